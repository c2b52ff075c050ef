// Committed annotations: commit the current mask (with its provenance: prompts, model,
// weights, and whether the brush edited it), undo/redo on the server, and the open image's
// committed masks, listed in the sidebar and drawn in the view.
import { api, getJson } from "./api.js";
import { clearPrompts } from "./prompts.js";
import { fromRle, toRle } from "./rle.js";
import { state } from "./state.js";
import { fail, status } from "./status.js";
import { css, madeBy, setCommitted } from "./view.js";

const $ = (id) => document.getElementById(id);
const decoded = new Map(); // "id:version" -> {mask, box}, so a refresh decodes only what changed

// A committed mask, cropped to its bounding box (the row's bbox: XYWH, whole pixels).
export function crop(row) {
  const [x, y, w, h] = row.bbox.map((v) => Math.round(v));
  const box = [x, y, Math.max(w, 1), Math.max(h, 1)];
  return { mask: fromRle(row.segmentation, box), box };
}

// Tell the other parts of the page (the review of proposals) that annotations changed.
const announce = () => document.dispatchEvent(new Event("segany:annotations"));

// Accept the proposal being fixed, with the current (corrected) mask in its place.
async function acceptFixed() {
  const row = state.editing;
  const body = {
    category_id: Number($("label").value),
    segmentation: toRle(state.mask, state.image.height, state.image.width),
    version: row.version,
  };
  await api(`/api/projects/${state.project.id}/annotations/${row.id}/accept`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  return row.id;
}

// Commit the current mask (when a proposal is being fixed: accept it, corrected). On
// failure the mask stays, so N commits it again.
export async function commit() {
  if (!state.mask) { status("Nothing to commit: click an object first (or paint one with the brush)."); return; }
  if (state.editing) {
    let id;
    try {
      id = await acceptFixed();
    } catch (error) {
      fail(error, "Could not accept the fixed proposal", { hint: "Your mask is still here: N or Retry accepts it.", action: { label: "Retry", run: commit } });
      return;
    }
    clearPrompts();
    await refreshCommitted();
    announce();
    status(`Proposal #${id} accepted with your corrections.`);
    return;
  }
  const prompts = { points: state.points, labels: state.labels, box: state.box };
  if (state.strokes.length) {
    prompts.edited = true; // the mask is not the decoder's: the brush or eraser changed it
    prompts.strokes = state.strokes.length;
  }
  const fromModel = state.best !== null; // a mask painted from nothing has no model
  const body = {
    image_id: state.image.id,
    category_id: Number($("label").value),
    segmentation: toRle(state.mask, state.image.height, state.image.width),
    stage: "manual",
    prompts,
    model_name: fromModel ? state.model.name : null,
    weights_sha256: fromModel ? state.model.weights_sha256 : null,
    predicted_iou: fromModel && !state.strokes.length ? state.best.iou : null,
  };
  try {
    await api(`/api/projects/${state.project.id}/annotations`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Idempotency-Key": crypto.randomUUID() },
      body: JSON.stringify(body),
    });
  } catch (error) {
    fail(error, "Could not commit", {
      hint: "Your mask is still here: N or Retry commits it.", action: { label: "Retry", run: commit },
    });
    return;
  }
  clearPrompts();
  await refreshCommitted();
  status("Committed.");
}

export async function history(action) {
  try {
    await api(`/api/projects/${state.project.id}/${action}`, { method: "POST" });
    await refreshCommitted();
    announce(); // an undone accept or reject puts a proposal back
    status(action === "undo" ? "Undone." : "Redone.");
  } catch (error) {
    fail(error, `Could not ${action}`);
  }
}

// The open image's committed annotations from the server, their masks decoded.
export async function refreshCommitted() {
  const image = state.image;
  if (!image) return;
  const rows = await getJson(`/api/projects/${state.project.id}/annotations?image_id=${image.id}`);
  if (state.image !== image) return;
  const entries = rows.map((row) => {
    const key = `${row.id}:${row.version}`;
    if (!decoded.has(key)) decoded.set(key, crop(row));
    return { row, ...decoded.get(key) };
  });
  const keep = new Set(rows.map((row) => `${row.id}:${row.version}`));
  for (const key of decoded.keys()) if (!keep.has(key)) decoded.delete(key);
  const shown = setCommitted(entries);
  const names = new Map(state.project.categories.map((c) => [c.id, c.name]));
  $("committed").replaceChildren(...shown.map(({ row, color }) => {
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = css(color);
    const label = names.get(row.category_id) || row.category_id;
    const edited = row.prompts && row.prompts.edited ? " · edited" : "";
    const made = madeBy(row.model_name, row.weights_sha256);
    item.append(swatch, `#${row.id} ${label} · ${row.area.toLocaleString("en")} px · ${made}${edited}`);
    return item;
  }));
  state.committed = rows;
}
