// The server's API: every request carries the user's token, and every failure becomes an
// error whose message says what a person can do (the server is down, the session expired,
// the server refused and why).
const params = new URLSearchParams(location.search);
export const token = params.get("token") || localStorage.getItem("segany.token");
if (params.get("token")) localStorage.setItem("segany.token", params.get("token"));

export class ApiError extends Error {
  constructor(message, kind, statusCode = 0) {
    super(message);
    this.kind = kind; // "offline" | "expired" | "refused"
    this.status = statusCode;
  }
}

// Go to the login page, which comes back here afterwards.
export function logIn() {
  location.href = `/login?next=${encodeURIComponent(location.pathname + location.search)}`;
}

// What the server said about a refused request: its JSON `detail` if there is one.
async function reason(answer) {
  const text = await answer.text().catch(() => "");
  try {
    const detail = JSON.parse(text).detail;
    if (detail) return typeof detail === "string" ? detail : JSON.stringify(detail);
  } catch { /* not JSON */ }
  return text.slice(0, 200) || answer.statusText;
}

export async function api(path, options = {}) {
  let answer;
  try {
    const headers = { ...(options.headers || {}), Authorization: `Bearer ${token}` };
    answer = await fetch(path, { ...options, headers });
  } catch {
    throw new ApiError("the server does not answer (is segany serve running?). Committed masks are safe on the server.", "offline");
  }
  if (answer.status === 401) {
    document.getElementById("relogin").hidden = false;
    throw new ApiError("your session has expired: log in again (committed masks are kept).", "expired", 401);
  }
  if (!answer.ok) {
    throw new ApiError(`the server answered ${answer.status}: ${await reason(answer)}`, "refused", answer.status);
  }
  return answer;
}

export const getJson = async (path) => (await api(path)).json();
