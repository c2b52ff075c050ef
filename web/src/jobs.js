// The fully automatic stage in the page: a background job on the server runs SegEvery over
// every image of the project (masks stored with stage "auto" and their scores). The page
// starts one, shows its progress while it runs (polling the server once a second), and can
// cancel it; a job started elsewhere (the CLI, another page) shows up too.
import { api, getJson } from "./api.js";
import { refreshCommitted } from "./committed.js";
import { loadVersions } from "./versions.js";
import { state } from "./state.js";
import { fail, status } from "./status.js";

const $ = (id) => document.getElementById(id);
const ACTIVE = new Set(["queued", "running"]);
let polling = 0;

function show(job) {
  state.job = job;
  const bar = $("job-progress"), text = $("job-text");
  const active = job && ACTIVE.has(job.state);
  $("job-start").disabled = active;
  $("job-cancel").hidden = !active;
  bar.hidden = !job;
  if (!job) { text.textContent = "Runs SegEvery over every image of the project."; return; }
  bar.max = Math.max(job.total, 1);
  bar.value = job.done;
  const masks = `${job.masks.toLocaleString("en")} mask(s)`;
  const words = { queued: "queued", running: "running", done: "done", cancelled: "cancelled", failed: "failed" };
  text.textContent = `Job #${job.id} ${words[job.state] || job.state}: ${job.done} / ${job.total} images · ${masks}` +
    (job.error ? ` · ${job.error}` : "");
}

// Poll the job until it ends; then the open image's masks are shown again.
async function follow(job) {
  const ticket = ++polling;
  show(job);
  while (job && ACTIVE.has(job.state) && ticket === polling) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    try {
      job = await getJson(`/api/jobs/${job.id}`);
    } catch (error) {
      fail(error, "Could not read the automatic job's progress");
      return;
    }
    if (ticket === polling) show(job);
  }
  if (ticket === polling && job && job.state === "done") {
    await Promise.all([refreshCommitted(), loadVersions()]); // the version's mask count grew
    status(`The automatic job finished: ${job.masks} mask(s) over ${job.total} image(s).`);
  }
}

export async function startJob() {
  try {
    const answer = await api(`/api/projects/${state.project.id}/jobs`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ kind: "auto" }),
    });
    status("The automatic job started: it runs on the server, this page may close.");
    follow(await answer.json());
  } catch (error) {
    fail(error, "Could not start the automatic job");
  }
}

export async function cancelJob() {
  if (!state.job) return;
  try {
    show(await (await api(`/api/jobs/${state.job.id}/cancel`, { method: "POST" })).json());
    status("Cancelling: the job stops after the image it is on.");
    follow(state.job);
  } catch (error) {
    fail(error, "Could not cancel the automatic job");
  }
}

// The project's latest job, followed if it is still running.
export async function loadJobs() {
  const jobs = await getJson(`/api/projects/${state.project.id}/jobs`);
  const latest = jobs.reduce((a, b) => (a && a.id > b.id ? a : b), null);
  if (latest) follow(latest);
  else show(null);
}

export function wireJobs() {
  $("job-start").addEventListener("click", startJob);
  $("job-cancel").addEventListener("click", cancelJob);
}
