// taskcore console: small behaviours shared by every page (no inline scripts: the CSP forbids them).
"use strict";

// <form data-confirm="Purge 1,204 messages from email?"> asks before it submits;
// <button data-confirm="..."> asks before its own form submits.
document.addEventListener("submit", (event) => {
  const form = event.target;
  const button = event.submitter;
  const question = (button && button.dataset.confirm) || form.dataset.confirm;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

// fetchJSON("/api/...", {method: "POST", body: {...}}) for live pages: sends and expects
// JSON, carries the session's CSRF token, and throws an Error with the server's message
// ({"error": {"message": ...}}) on a non-2xx answer.
window.fetchJSON = async (url, options = {}) => {
  const meta = document.querySelector('meta[name="csrf-token"]');
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  let body = options.body;
  if (body !== undefined && typeof body !== "string") {
    body = JSON.stringify(body);
    headers["Content-Type"] = "application/json";
  }
  if (meta) {
    headers["X-CSRFToken"] = meta.content;
  }
  const response = await fetch(url, { ...options, headers, body, credentials: "same-origin" });
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const message = (data && data.error && data.error.message) || response.statusText;
    const error = new Error(message);
    error.status = response.status;
    error.data = data;
    throw error;
  }
  return data;
};

// Live regions: an element with data-live="name" (and data-live-every="ms") is refreshed in
// place: the page fetches its own URL again and swaps in the element of the same name from
// the fresh HTML. The server renders everything; data-live-done stops the refreshing.
(() => {
  const busy = (element) =>
    element.contains(document.activeElement) ||
    [...element.querySelectorAll("input[type=text], input:checked")].some(
      (input) => input.type !== "text" || input.value !== "",
    );

  const schedule = (element) => {
    if (element.hasAttribute("data-live-done")) return;
    const every = Number(element.dataset.liveEvery || 5000);
    window.setTimeout(() => (busy(element) ? schedule(element) : refresh(element)), every);
  };

  const refresh = async (element) => {
    const name = element.dataset.live;
    try {
      const response = await fetch(window.location.href, { credentials: "same-origin" });
      if (response.ok) {
        const page = new DOMParser().parseFromString(await response.text(), "text/html");
        const fresh = page.querySelector(`[data-live="${name}"]`);
        if (fresh) {
          element.replaceWith(fresh);
          element = fresh;
        }
      }
    } catch (error) {
      // The server is restarting or the network blinked: try again on the next tick.
    }
    schedule(element);
  };

  document.querySelectorAll("[data-live]").forEach(schedule);
})();
