// The semi-automatic stage in the page: the server fills the open image with confident
// SegEvery masks marked "proposed" (G asks for them); each one is reviewed in turn:
// accepted with the chosen label (Y or Enter), rejected (X or Delete), or fixed (F: it
// becomes the current mask, the brush and eraser correct it, and N accepts the corrected
// mask). What is missing is then added by hand with the prompt tool.
import { api, getJson } from "./api.js";
import { crop, refreshCommitted } from "./committed.js";
import { clearPrompts } from "./prompts.js";
import { showCurrent } from "./panel.js";
import { state } from "./state.js";
import { fail, status } from "./status.js";
import { maskChanged, setProposals } from "./view.js";

const $ = (id) => document.getElementById(id);
const base = () => `/api/projects/${state.project.id}`;

// The open image's proposals from the server, the selection kept where it can be.
export async function refreshProposals() {
  const image = state.image;
  if (!image) { showProposals([]); return; }
  const rows = await getJson(`${base()}/annotations?image_id=${image.id}&status=proposed`);
  if (state.image !== image) return;
  const previous = state.proposals[state.selected];
  showProposals(rows.map((row) => ({ row, ...crop(row) })));
  const kept = previous ? state.proposals.findIndex((p) => p.row.id === previous.row.id) : -1;
  select(kept >= 0 ? kept : Math.min(state.selected, state.proposals.length - 1));
}

function showProposals(entries) {
  state.proposals = entries;
  state.selected = entries.length ? Math.max(0, Math.min(state.selected, entries.length - 1)) : -1;
  $("proposals-count").textContent = entries.length
    ? `${entries.length} to review · Y accept · X reject · F fix · J / K next / previous`
    : "none to review: G proposes masks for this image";
  for (const id of ["accept", "reject", "fix"]) $(`proposal-${id}`).disabled = !entries.length;
  setProposals(entries, state.selected);
}

// Select proposal `index` (wrapping around): it is drawn highlighted and its scores shown.
export function select(index) {
  const count = state.proposals.length;
  state.selected = count ? ((index % count) + count) % count : -1;
  setProposals(state.proposals, state.selected);
  const entry = state.proposals[state.selected];
  $("proposal-info").textContent = entry
    ? `#${entry.row.id} · ${entry.row.area.toLocaleString("en")} px · IoU ${score(entry.row.predicted_iou)}` +
      ` · stability ${score(entry.row.stability_score)}`
    : "";
}
const score = (value) => (value === null || value === undefined ? "?" : value.toFixed(3));

// Ask the server for proposals on the open image (SegEvery with the project's settings);
// masks that overlap an existing annotation, rejected ones included, are not offered again.
export async function propose() {
  if (!state.image) return;
  status("Proposing masks for this image…");
  try {
    const answer = await (await api(`${base()}/images/${state.image.id}/proposals`, { method: "POST" })).json();
    await refreshProposals();
    status(`${answer.created} proposal(s) to review${answer.skipped ? `, ${answer.skipped} overlapping existing masks left out` : ""}.`);
  } catch (error) {
    fail(error, "Could not propose masks");
  }
}

// Accept the selected proposal with the label picker's category, or reject it.
export async function decide(verdict) {
  const entry = state.proposals[state.selected];
  if (!entry) { status("No proposal to review: G proposes masks for this image."); return; }
  const body = verdict === "accept" ? { category_id: Number($("label").value), version: entry.row.version } : {};
  try {
    await api(`${base()}/annotations/${entry.row.id}/${verdict}`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
  } catch (error) {
    fail(error, `Could not ${verdict} proposal #${entry.row.id}`);
    return;
  }
  await Promise.all([refreshProposals(), refreshCommitted()]);
  status(`Proposal #${entry.row.id} ${verdict === "accept" ? "accepted" : "rejected"}.`);
}

// Fix the selected proposal: it becomes the current mask (the brush and eraser correct it)
// and N accepts it with the corrections.
export function fix() {
  const entry = state.proposals[state.selected];
  if (!entry) return;
  clearPrompts();
  const { width: W, height: H } = state.image;
  const mask = new Uint8Array(W * H);
  const [x0, y0, w, h] = entry.box;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) if (entry.mask[y * w + x]) mask[(y0 + y) * W + x0 + x] = 1;
  }
  state.decoded = mask;
  state.mask = mask.slice();
  state.editing = entry.row;
  maskChanged();
  showCurrent();
  status(`Fixing proposal #${entry.row.id}: correct it with the brush (B) or eraser (E), then N accepts it.`);
}

export function wireReview() {
  $("propose").addEventListener("click", propose);
  $("proposal-accept").addEventListener("click", () => decide("accept"));
  $("proposal-reject").addEventListener("click", () => decide("reject"));
  $("proposal-fix").addEventListener("click", fix);
  document.addEventListener("segany:annotations", () => refreshProposals().catch(() => {}));
}
