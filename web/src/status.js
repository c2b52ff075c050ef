// The status line at the bottom: what happened, and what a person can do about a failure
// (a button that retries, or logs in again when the token has expired).
const $ = (id) => document.getElementById(id);
let retry = null;

// Say `text`; kind "info" or "error". With `action` ({label, run}), offer a button that
// runs it (one at a time: a newer message replaces the button).
export function status(text, kind = "info", action = null) {
  const line = $("status");
  line.textContent = text;
  line.dataset.kind = kind;
  retry = action;
  $("action").hidden = !action;
  if (action) $("action").textContent = action.label;
}

// Report a failure: "`what`: why. `hint`". Errors from api() carry a reason a person can
// act on (the server is down, the session expired, what the server refused); others (the
// decoder, the browser) are said as they are.
export function fail(error, what, { hint = "", action = null } = {}) {
  let why = String((error && error.message) || error);
  if (hint && !/[.!?]$/.test(why)) why += ".";
  status(`${what}: ${why}${hint ? ` ${hint}` : ""}`, "error", action);
}

export function wireStatus() {
  $("action").addEventListener("click", () => {
    const run = retry && retry.run;
    status("");
    if (run) run();
  });
}
