// A run's logs: streamed from the API (every line so far, then each new one while the run
// goes on), all steps' or one step's.
import { stream } from "./api.js";

export function runLogs(runId) {
  const box = document.getElementById("logs");
  const tabs = [...document.querySelectorAll(".tabs [role=tab]")];
  let stop = () => {};

  function show(step) {
    stop();
    for (const tab of tabs) tab.setAttribute("aria-selected", String(tab.dataset.step === step));
    box.textContent = "Loading…";
    let empty = true;
    const query = step ? { step } : {};
    stop = stream(`/api/v1/runs/${runId}/logs/stream`, query, (kind, data) => {
      if (kind === "log") {
        if (empty) box.textContent = "";
        empty = false;
        const row = document.createElement("span");
        row.className = `line ${data.stream}`;
        const where = data.step_name ? `[${data.step_name}] ` : "";
        row.textContent = `${data.at.slice(11, 23)} ${where}${data.text}\n`;
        const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
        box.appendChild(row);
        if (atBottom) box.scrollTop = box.scrollHeight;
      } else if (kind === "end") {
        if (empty) box.textContent = "No log lines.";
        box.dataset.ended = "yes";
        return false;
      }
      return true;
    });
    if (empty) box.textContent = "No log lines yet.";
  }

  for (const tab of tabs) tab.addEventListener("click", () => show(tab.dataset.step));
  document.querySelector(".tabs")?.addEventListener("keydown", (e) => {
    const at = tabs.indexOf(document.activeElement);
    if (at < 0 || !["ArrowLeft", "ArrowRight"].includes(e.key)) return;
    const next = tabs[(at + (e.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
    next.focus();
    show(next.dataset.step);
  });
  show("");

  return {
    bindDag(region) {
      for (const node of region.querySelectorAll(".node[data-step]")) {
        const open = () => {
          show(node.dataset.step);
          box.scrollIntoView({ block: "nearest" });
        };
        node.addEventListener("click", open);
        node.addEventListener("keydown", (e) => {
          if (e.key === "Enter" || e.key === " ") {
            e.preventDefault();
            open();
          }
        });
      }
    },
  };
}
