// The keyboard: every action of the page has a key (the sidebar lists them).
import { commit, history } from "./committed.js";
import { undoStroke } from "./edits.js";
import { openImage } from "./images.js";
import { decide, fix, propose, select } from "./review.js";
import { clearPrompts } from "./prompts.js";
import { state } from "./state.js";
import { growBrush, setTool, setView } from "./tools.js";

export function wireKeys() {
  document.addEventListener("keydown", (event) => {
    // keys typed into the label picker stay there (the opacity slider takes only arrows)
    const field = event.target.tagName === "SELECT" || (event.target.tagName === "INPUT" && event.target.type !== "range");
    if (field) return;
    const key = event.key.toLowerCase();
    if ((event.ctrlKey || event.metaKey) && key === "z") {
      event.preventDefault();
      // the page's own strokes first, then the server's history
      if (event.shiftKey) history("redo");
      else if (!undoStroke()) history("undo");
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (key === "n") commit();
    else if (key === "escape") { if (state.tool !== "prompt") setTool("prompt"); else clearPrompts(); }
    else if (key === "a") openImage(state.index - 1);
    else if (key === "d") openImage(state.index + 1);
    else if (key === "b") setTool("brush");
    else if (key === "e") setTool("eraser");
    else if (key === "v") setTool("prompt");
    else if (key === "[") growBrush(1 / 1.25);
    else if (key === "]") growBrush(1.25);
    else if (key === "p") setView(state.view === "polygons" ? "filled" : "polygons");
    else if (key === "g") propose();
    else if (key === "y" || key === "enter") decide("accept");
    else if (key === "x" || key === "delete") decide("reject");
    else if (key === "f") fix();
    else if (key === "j") select(state.selected + 1);
    else if (key === "k") select(state.selected - 1);
    else return;
    event.preventDefault();
  });
}
