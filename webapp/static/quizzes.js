// Quizzes: the result page updates itself; a quiz form is sent once. (No inline scripts: CSP.)
"use strict";

// <form data-once>: a second submit (double click) is ignored in the browser. The server
// would find the first submission anyway (the form's one-time token), this only saves a trip.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!form.hasAttribute("data-once")) return;
  if (form.dataset.sent) {
    event.preventDefault();
    return;
  }
  if (!event.defaultPrevented) {
    form.dataset.sent = "1";
    form.querySelectorAll("button[type=submit]").forEach((button) => {
      button.setAttribute("aria-disabled", "true");
      button.textContent = "Submitting…";
    });
  }
});

// The result page: #quiz-result[data-quiz-poll] polls the small JSON status endpoint and,
// when the state changes (pending -> graded, delayed -> pending), fetches the page once and
// swaps the fresh #quiz-result in. No reload, no navigation.
(() => {
  const FIRST_DELAY = 700;
  const MAX_DELAY = 4000;

  const swap = async () => {
    const response = await fetch(window.location.href, { credentials: "same-origin" });
    if (!response.ok) return null;
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const fresh = page.getElementById("quiz-result");
    const current = document.getElementById("quiz-result");
    if (fresh && current) {
      current.replaceWith(fresh);
      return fresh;
    }
    return null;
  };

  const poll = (element, delay) => {
    window.setTimeout(async () => {
      let next = element;
      try {
        const response = await fetch(element.dataset.quizPoll, {
          credentials: "same-origin",
          headers: { Accept: "application/json" },
        });
        if (response.ok) {
          const status = await response.json();
          if (status.state !== element.dataset.quizState) {
            next = (await swap()) || element;
          }
        }
      } catch (error) {
        // The server is restarting or the network blinked: try again on the next tick.
      }
      if (next.dataset.quizState !== "graded") {
        poll(next, Math.min(delay * 1.3, MAX_DELAY));
      }
    }, delay);
  };

  const result = document.getElementById("quiz-result");
  if (result && result.dataset.quizPoll && result.dataset.quizState !== "graded") {
    poll(result, FIRST_DELAY);
  }
})();
