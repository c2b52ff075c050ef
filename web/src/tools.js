// The tools and the mouse: the prompt tool (click: a point, drag: a box, hover: a preview)
// and the brush and eraser (drag: paint the current mask), the brush size and the view.
import { beginStroke, endStroke, extendStroke } from "./edits.js";
import { showTools } from "./panel.js";
import { addPoint, hover, setBox } from "./prompts.js";
import { state } from "./state.js";
import { fail, status } from "./status.js";
import { fit, request, setCursor, setDragBox, toImage } from "./view.js";

const $ = (id) => document.getElementById(id);
export const TOOLS = ["prompt", "brush", "eraser"];

const HINTS = {
  prompt: "Prompt tool: click an object (right or Shift+click removes), drag a box. N commits.",
  brush: "Brush: drag over the image to add pixels to the mask. [ and ] change its size; V or Esc goes back to prompts.",
  eraser: "Eraser: drag over the mask to remove pixels. [ and ] change its size; V or Esc goes back to prompts.",
};

export function setTool(tool) {
  if (!TOOLS.includes(tool)) throw new Error(`no tool ${tool}`);
  const changed = state.tool !== tool;
  state.tool = tool;
  if (tool === "prompt") setCursor(null);
  if (changed && state.image) status(HINTS[tool]);
  showTools();
  request();
}

// The brush radius, in image pixels. `chosen`: the person set it (then opening an image
// keeps it rather than sizing it to the image).
export function setBrushRadius(radius, chosen = true) {
  state.brushRadius = Math.max(1, Math.min(1000, Math.round(radius)));
  if (chosen) state.brushChosen = true;
  showTools();
  request();
}

// `[` and `]`: the radius times 1/1.25 or 1.25, by at least a pixel.
export function growBrush(factor) {
  const r = state.brushRadius;
  setBrushRadius(factor > 1 ? Math.max(r + 1, r * factor) : Math.min(r - 1, r * factor));
}

// Filled masks or polygon outlines (P).
export function setView(view) {
  state.view = view === "polygons" ? "polygons" : "filled";
  showTools();
  request();
}

// A brush that suits the image, about 1% of its longer side, unless one was chosen.
export function brushForImage(image) {
  if (!state.brushChosen) setBrushRadius(Math.max(3, Math.round(Math.max(image.width, image.height) / 100)), false);
}

export function wireMouse() {
  const layer = $("mask");
  layer.addEventListener("contextmenu", (event) => event.preventDefault());
  const failed = (error) => fail(error, "Could not decode");
  // prompt tool: a click adds a point; a drag (over 5 screen pixels) draws a box
  let drag = null;
  layer.addEventListener("mousedown", (event) => {
    if (!state.image) return;
    const at = toImage(event);
    if (state.tool !== "prompt") {
      if (event.button === 0) beginStroke(at);
      return;
    }
    drag = { start: at, screen: [event.clientX, event.clientY], positive: event.button === 0 && !event.shiftKey, end: null };
  });
  layer.addEventListener("mousemove", (event) => {
    if (!state.image) return;
    const at = toImage(event);
    if (state.tool !== "prompt") { setCursor(at); extendStroke(at); return; }
    if (!drag) { hover(...at).catch(() => {}); return; }
    if (Math.hypot(event.clientX - drag.screen[0], event.clientY - drag.screen[1]) > 5) {
      drag.end = at;
      const [a, b] = [drag.start, drag.end];
      setDragBox([Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[0], b[0]), Math.max(a[1], b[1])]);
    }
  });
  layer.addEventListener("mouseleave", () => setCursor(null));
  window.addEventListener("mouseup", () => {
    if (endStroke() || !drag) return;
    const done = drag;
    drag = null;
    setDragBox(null);
    if (done.end) setBox(done.start, done.end).catch(failed);
    else addPoint(...done.start, done.positive).catch(failed);
  });
  for (const tool of TOOLS) $(`tool-${tool}`).addEventListener("click", () => setTool(tool));
  $("brush-smaller").addEventListener("click", () => growBrush(1 / 1.25));
  $("brush-larger").addEventListener("click", () => growBrush(1.25));
  $("view-polygons").addEventListener("click", () => setView(state.view === "polygons" ? "filled" : "polygons"));
  $("opacity").addEventListener("input", request);
  window.addEventListener("resize", fit);
}
