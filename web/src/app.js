// segany's annotation page: the image, the decoder in a worker, clicks -> masks, brush
// corrections, commits. State lives in the server; the page keeps only the current prompts
// and mask. This module starts the page; each concern has its own module:
//   api.js (requests, errors) · decoder.js (the worker, prompts -> masks) · masks.js, rle.js
//   (post-processing, RLE) · view.js, layers.js (drawing) · outline.js (polygons) ·
//   prompts.js (prompt tool) · brush.js, edits.js (brush and eraser) · images.js (opening
//   images) · committed.js (commit, undo, the committed list) · tools.js (mouse, tools) ·
//   keys.js (keyboard) · panel.js (sidebar) · status.js (status line) · state.js ·
//   review.js (proposed masks: accept, reject, fix) · jobs.js (the automatic job) ·
//   versions.js (the model's versions)
import { ApiError, getJson, logIn, token } from "./api.js";
import { commit, history, refreshCommitted } from "./committed.js";
import { loadModel } from "./decoder.js";
import { undoStroke } from "./edits.js";
import { openImage, wireNotice } from "./images.js";
import { cancelJob, loadJobs, startJob, wireJobs } from "./jobs.js";
import { wireKeys } from "./keys.js";
import { showModel, showTools } from "./panel.js";
import { clearPrompts } from "./prompts.js";
import { decide, fix, propose, refreshProposals, select, wireReview } from "./review.js";
import { state } from "./state.js";
import { status, wireStatus } from "./status.js";
import { setBrushRadius, setTool, setView, wireMouse } from "./tools.js";
import { loadVersions } from "./versions.js";
import { committedOutlines, currentOutlines } from "./view.js";

const $ = (id) => document.getElementById(id);

async function main() {
  if (!token) { logIn(); return; }
  wireStatus();
  wireMouse();
  wireKeys();
  wireNotice();
  wireReview();
  wireJobs();
  showTools();
  $("relogin").addEventListener("click", logIn);
  $("commit").addEventListener("click", () => commit());
  const projects = await getJson("/api/projects");
  const wanted = Number(new URLSearchParams(location.search).get("project"));
  state.project = projects.find((p) => p.id === wanted) || projects[0];
  if (!state.project) { status("No project yet: create one with segany project create, or POST /api/projects."); return; }
  $("project").textContent = state.project.name;
  $("label").replaceChildren(...state.project.categories.map((c) => new Option(c.name, c.id)));
  state.images = await getJson(`/api/projects/${state.project.id}/images`);
  if (!state.images.length) { status("This project has no images yet."); return; }
  showModel((await loadModel()).threads);
  await openImage(0);
  await Promise.all([loadJobs(), loadVersions()]);
}

// What the browser tests drive and read.
window.seganyApp = {
  ready: main().then(() => true, (error) => {
    const retry = error instanceof ApiError && error.kind === "offline" ? { label: "Reload", run: () => location.reload() } : null;
    status(`The page could not start: ${error.message || error}`, "error", retry);
    return false;
  }),
  state,
  openImage,
  commit,
  history,
  refreshCommitted,
  refreshProposals,
  loadVersions,
  propose,
  decide,
  fix,
  select,
  startJob,
  cancelJob,
  setTool,
  setView,
  setBrushRadius,
  undoStroke,
  // back to a fresh start on the open image: the prompt tool, filled masks, no prompts
  reset: () => { setTool("prompt"); setView("filled"); clearPrompts(); },
  // the polygon outlines: of the current mask, and of each committed mask by annotation id
  outlines: () => ({
    current: currentOutlines(),
    committed: Object.fromEntries(committedOutlines().map((entry) => [entry.row.id, entry.rings])),
  }),
  // the current mask at the image's resolution, one byte a pixel, base64
  mask: () => {
    const bytes = state.mask || new Uint8Array(state.image.width * state.image.height);
    let text = "";
    for (let i = 0; i < bytes.length; i += 32768) text += String.fromCharCode.apply(null, bytes.subarray(i, i + 32768));
    return { width: state.image.width, height: state.image.height, data: btoa(text) };
  },
};
