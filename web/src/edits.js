// Brush and eraser edits of the current mask, at the image's resolution. Strokes are kept
// (not only their pixels) so that the mask can be rebuilt when the decoder answers a new
// click (the corrections stay) and when a stroke is undone.
import { applyStroke, stampSegment } from "./brush.js";
import { showCurrent } from "./panel.js";
import { state } from "./state.js";
import { maskChanged } from "./view.js";

let stroke = null; // the stroke being painted

// The current mask from the decoder's mask and the strokes (copied before the first stroke
// so that the decoder's stays as it answered).
export function rebuildMask() {
  if (!state.strokes.length) { state.mask = state.decoded; maskChanged(); return; }
  const { width: W, height: H } = state.image;
  state.mask = state.decoded ? state.decoded.slice() : new Uint8Array(W * H);
  for (const done of state.strokes) applyStroke(state.mask, W, H, done);
  maskChanged();
}

// Start a stroke at image point `at` (erasing with the eraser tool). Painting on no mask
// starts one from nothing: a mask drawn by hand.
export function beginStroke(at) {
  const { width: W, height: H } = state.image;
  if (!state.mask) state.mask = new Uint8Array(W * H);
  else if (state.mask === state.decoded) state.mask = state.decoded.slice();
  state.preview = null;
  stroke = { points: [at], radius: state.brushRadius, erase: state.tool === "eraser" };
  state.strokes.push(stroke);
  state.stroking = true;
  paintTo(at);
}

// Continue the stroke to `at`: only the segment from the last point is painted, and only
// the view pixels over it are repainted.
export function extendStroke(at) {
  if (!stroke) return;
  stroke.points.push(at);
  paintTo(at);
}

function paintTo(at) {
  const start = performance.now();
  const { width: W, height: H } = state.image, points = stroke.points;
  const from = points[Math.max(0, points.length - 2)];
  const dirty = stampSegment(state.mask, W, H, from, at, stroke.radius, stroke.erase ? 0 : 1);
  if (dirty) maskChanged(dirty);
  state.perf.paint = performance.now() - start;
}

export function endStroke() {
  if (!stroke) return false;
  stroke = null;
  state.stroking = false;
  maskChanged(); // the outline, in the polygon view
  showCurrent();
  return true;
}

// Undo the last stroke (Ctrl+Z); false when there is none (then undo goes to the server).
// While the mouse is still painting, nothing is undone (and nothing goes to the server).
export function undoStroke() {
  if (stroke) return true;
  if (!state.strokes.length) return false;
  state.strokes.pop();
  rebuildMask();
  showCurrent();
  return true;
}
