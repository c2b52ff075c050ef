// The page's state, shared by its modules. The server keeps projects, images and committed
// annotations; the page keeps only what is being made: the open image, the prompts, the
// current mask and its brush edits, and its settings (tool, view).
export const state = {
  model: null, // GET /api/model: name, weights_sha256, input_size, mask_threshold, ...
  project: null,
  images: [], // the project's image rows
  index: 0, // which of them is open (or failed to open)
  image: null, // the open image's row; null while none is shown
  meta: null, // its embedding's sizes (X-Segany-Embedding)
  bitmap: null, // its pixels (ImageBitmap), drawn scaled to the view
  points: [], labels: [], box: null, // the prompts, in image pixels
  decoded: null, // the decoder's mask for them (Uint8Array H*W), before brush edits
  mask: null, // the current mask: decoded plus strokes (Uint8Array H*W); commit sends it
  strokes: [], // brush/eraser strokes on it: {points, radius, erase}
  stroking: false, // a stroke is being painted (the mouse button is down)
  preview: null, // the hover preview {data, width, height}, at the view's resolution
  best: null, // {index, iou} of the decoder output the mask came from
  hovering: false, lastMs: null, decodes: 0, pending: new Map(),
  tool: "prompt", // "prompt" | "brush" | "eraser"
  brushRadius: 8, // image pixels
  brushChosen: false, // set by the person ([, ]): opening an image keeps it
  view: "filled", // "filled" | "polygons"
  committed: [], // this image's committed annotation rows (with their RLE)
  proposals: [], // this image's proposed masks to review: [{row, mask, box}] (crops)
  selected: -1, // which proposal is under review
  editing: null, // the proposal row being fixed: N accepts the current mask in its place
  job: null, // the project's latest automatic job, as the server reported it
  versions: [], // the model's versions (GET /api/model/versions), with their mask counts
  perf: { decode: 0, paint: 0, render: 0, outline: 0 }, // last durations, ms
};

// The image's size in pixels, [width, height].
export const imageSize = () => [state.image.width, state.image.height];
