// The model's versions in the page: the server serves one version of the model at a time
// (retraining from a project adds one); the sidebar lists them with how many masks each
// made, and activating an earlier one rolls back. The page then starts again on the new
// version (its decoder and the embeddings follow the weights).
import { api, getJson } from "./api.js";
import { state } from "./state.js";
import { fail, status } from "./status.js";

const $ = (id) => document.getElementById(id);

export async function loadVersions() {
  let rows;
  try {
    rows = await getJson("/api/model/versions");
  } catch (error) {
    fail(error, "Could not read the model's versions");
    return;
  }
  state.versions = rows;
  $("versions").replaceChildren(...rows.map((row) => {
    const item = document.createElement("li");
    const sha = row.weights_sha256.slice(0, 8);
    const masks = `${row.masks.toLocaleString("en")} mask${row.masks === 1 ? "" : "s"}`;
    item.append(`${row.label} · ${row.name} ${sha} · ${masks}`);
    if (row.active) {
      const mark = document.createElement("strong");
      mark.textContent = " · serving";
      item.append(mark);
    } else {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "small";
      button.textContent = "Activate";
      button.title = `serve ${row.label} from now on (a rollback if it is older)`;
      button.addEventListener("click", () => activate(row));
      item.append(" ", button);
    }
    return item;
  }));
}

async function activate(row) {
  status(`Activating ${row.label}…`);
  try {
    await api(`/api/model/versions/${row.id}/activate`, { method: "POST" });
  } catch (error) {
    fail(error, `Could not activate ${row.label}`);
    return;
  }
  status(`${row.label} is served now: reloading the page's decoder…`);
  location.reload();
}
