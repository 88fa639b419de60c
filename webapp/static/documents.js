// Documents: the document page's live progress. It polls the small JSON endpoint named by
// data-status-url and updates the badge, the bar, the steps and the outcome in place (no
// reload); when the document is finished it swaps in the questions and answers.
"use strict";

(() => {
  const card = document.getElementById("document-progress");
  if (!card) return;
  const url = card.dataset.statusUrl;
  const EVERY = 600;
  let lastStatus = card.dataset.status;
  let lastTotal = null;
  let lastDone = null;

  const byId = (id) => document.getElementById(id);

  const render = (p) => {
    const badge = byId("document-status").querySelector(".badge");
    badge.className = `badge doc-status doc-status-${p.status}`;
    badge.textContent = p.status_label;
    byId("document-message").textContent = p.message;
    byId("document-bar").value = p.percent;
    byId("document-bar").textContent = `${p.percent} %`;
    byId("document-percent").textContent = `${p.percent} %`;
    for (const step of p.steps) {
      const item = card.querySelector(`.doc-step[data-step="${step.name}"]`);
      if (!item) continue;
      item.className = `doc-step doc-step-${step.state}`;
      item.querySelector(".doc-step-detail").textContent = step.detail;
    }
    byId("document-done").hidden = p.status !== "done";
    byId("document-restart").hidden = !(p.status === "failed" || p.status === "delayed");
    card.dataset.status = p.status;
  };

  // The questions (and answers) section is rendered by the server: fetch the page once
  // more and swap it in, as console.js does for its live regions.
  const refreshAnswers = async () => {
    const response = await fetch(window.location.href, { credentials: "same-origin" });
    if (!response.ok) return;
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const fresh = page.querySelector('[data-swap="answers"]');
    const current = document.querySelector('[data-swap="answers"]');
    if (fresh && current) current.replaceWith(fresh);
    const note = page.getElementById("document-result-note");
    if (note) byId("document-result-note").textContent = note.textContent;
  };

  const poll = async () => {
    let finished = false;
    try {
      const response = await fetch(url, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (response.ok) {
        const progress = await response.json();
        render(progress);
        // When questions are found or answered, and when the outcome is known: show them.
        const found = progress.questions_total !== null && lastTotal === null;
        const answered = lastDone !== null && progress.questions_done !== lastDone;
        if (found || answered || (progress.finished && progress.status !== lastStatus)) {
          await refreshAnswers();
        }
        lastStatus = progress.status;
        lastTotal = progress.questions_total;
        lastDone = progress.questions_done;
        finished = progress.finished;
      }
    } catch (error) {
      // The server is restarting or the network blinked: try again on the next tick.
    }
    if (!finished) window.setTimeout(poll, EVERY);
  };

  if (!card.hasAttribute("data-finished")) window.setTimeout(poll, EVERY);
})();
