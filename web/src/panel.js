// The sidebar's state of the work: the current mask (its size, the model that made it,
// its edits), the active tool, the brush size and the view; the header's served model.
import { state } from "./state.js";
import { madeBy } from "./view.js";

const $ = (id) => document.getElementById(id);

export function showModel(threads) {
  const { name, weights_sha256: sha, version } = state.model;
  const label = version ? ` ${version}` : "";
  $("model").textContent = `model ${name}${label} · weights ${sha.slice(0, 12)} · ${threads} thread(s)`;
}

// The current mask: how many pixels, which model made it and with what predicted IoU, and
// whether the brush or eraser changed it.
export function showCurrent() {
  const line = $("current");
  $("commit").disabled = !state.mask;
  if (!state.best) $("timing").textContent = "";
  if (!state.mask) {
    line.textContent = state.image ? "No mask yet: click an object (or paint one with the brush)." : "";
    return;
  }
  let area = 0;
  for (let i = 0; i < state.mask.length; i++) area += state.mask[i];
  area = area.toLocaleString("en");
  const row = state.editing;
  const made = row ? madeBy(row.model_name, row.weights_sha256) : state.best
    ? `${madeBy(state.model.name, state.model.weights_sha256)}, IoU ${state.best.iou.toFixed(3)}`
    : "painted by hand";
  const fixing = state.editing ? `proposal #${state.editing.id} · ` : "";
  const edits = state.strokes.length ? ` · edited (${state.strokes.length} stroke${state.strokes.length > 1 ? "s" : ""})` : "";
  line.textContent = `${fixing}${area} px · ${made}${edits}`;
  if (state.lastMs !== null && state.best) $("timing").textContent = `decoder ${state.lastMs.toFixed(1)} ms`;
}

// The tool buttons (the active one pressed), the brush size and the view toggle.
export function showTools() {
  for (const tool of ["prompt", "brush", "eraser"]) $(`tool-${tool}`).setAttribute("aria-pressed", String(state.tool === tool));
  $("brush-size").textContent = `${state.brushRadius} px`;
  $("view-polygons").setAttribute("aria-pressed", String(state.view === "polygons"));
  $("mask").dataset.tool = state.tool;
}
