// Opening an image: its pixels and its embedding from the server (the next image's
// embedding fetched ahead), then its committed masks. An image that fails to load is named
// in the status line; A and D still move on from it.
import { api } from "./api.js";
import { fetchEmbedding, forgetEmbeddings, loadModel, useEmbedding } from "./decoder.js";
import { refreshCommitted } from "./committed.js";
import { showCurrent, showModel } from "./panel.js";
import { clearPrompts } from "./prompts.js";
import { refreshProposals } from "./review.js";
import { state } from "./state.js";
import { fail, status } from "./status.js";
import { brushForImage } from "./tools.js";
import { loadVersions } from "./versions.js";
import { fit, setCommitted, setProposals } from "./view.js";

const $ = (id) => document.getElementById(id);
let opening = 0; // the latest openImage call: an older one that finishes later gives way

// The buttons of the notice shown in place of an image that failed to load.
export function wireNotice() {
  $("notice-previous").addEventListener("click", () => openImage(state.index - 1));
  $("notice-retry").addEventListener("click", () => openImage(state.index));
  $("notice-next").addEventListener("click", () => openImage(state.index + 1));
}

// The image's pixels; a file the browser cannot decode is said so.
async function pixels(image) {
  const blob = await (await api(`/api/images/${image.id}/file`)).blob();
  try {
    return await createImageBitmap(blob);
  } catch {
    throw new Error(`the browser cannot read its file (${blob.type || "unknown type"}, ${blob.size} bytes)`);
  }
}

function forgetCommitted() {
  state.committed = [];
  state.proposals = []; state.selected = -1;
  setCommitted([]);
  setProposals([], -1);
  $("committed").replaceChildren();
}

export async function openImage(index) {
  if (!state.images.length) return;
  const ticket = ++opening;
  state.index = ((index % state.images.length) + state.images.length) % state.images.length;
  const image = state.images[state.index];
  const where = `${image.file_name} (${state.index + 1}/${state.images.length})`;
  $("where").textContent = `${where} · ${image.width}x${image.height}`;
  status(`Loading ${image.file_name}…`);
  let bitmap, embedding;
  try {
    [bitmap, embedding] = await Promise.all([pixels(image), fetchEmbedding(image)]);
  } catch (error) {
    if (ticket !== opening) return;
    state.image = null; state.bitmap = null;
    forgetCommitted();
    clearPrompts();
    fit();
    fail(error, `Image ${where} could not be loaded`, { hint: "Press D for the next image or A for the previous one." });
    $("notice-text").textContent = `${image.file_name} could not be loaded: ${error.message || error}`;
    $("notice").hidden = false;
    return;
  }
  if (ticket !== opening) return;
  if (embedding.meta.weights_sha256 && embedding.meta.weights_sha256 !== state.model.weights_sha256) {
    // the server switched model versions since the page loaded its decoder: load the one
    // it serves now, and this image's embedding again
    status("The server serves another model version now: loading its decoder…");
    showModel((await loadModel()).threads);
    forgetEmbeddings();
    embedding = await fetchEmbedding(image);
    loadVersions();
    if (ticket !== opening) return;
  }
  state.image = image;
  state.bitmap = bitmap;
  $("notice").hidden = true;
  brushForImage(image);
  useEmbedding(image, embedding);
  forgetCommitted(); // the previous image's, until this one's are read
  clearPrompts();
  fit();
  showCurrent();
  status("Click an object: left adds, right or Shift+click removes, drag draws a box. "
         + "B brush, E eraser, P polygons, N commits, A/D change image, G proposes masks.");
  const next = state.images[(state.index + 1) % state.images.length];
  if (next !== image) fetchEmbedding(next).catch(() => {}); // ahead of time; errors show when opened
  const masks = () => Promise.all([refreshCommitted(), refreshProposals()]);
  try {
    await masks();
  } catch (error) {
    fail(error, "Could not read this image's masks", { action: { label: "Retry", run: masks } });
  }
}
