// A run's logs: read page by page from the API, and followed while the run goes on.
import { call } from "./api.js";

export function runLogs(runId) {
  const box = document.getElementById("logs");
  const tabs = [...document.querySelectorAll(".tabs [role=tab]")];
  let step = "";
  let after = 0;
  let finished = document.body.dataset.finished === "yes";
  let generation = 0;
  let timer = null;

  async function load() {
    const mine = generation;
    for (;;) {
      const params = new URLSearchParams({ after: String(after), limit: "2000" });
      if (step) params.set("step", step);
      const result = await call("GET", `/api/v1/runs/${runId}/logs?${params}`);
      if (mine !== generation) return;
      if (!result.ok) {
        box.textContent = result.message;
        return;
      }
      if (after === 0) box.textContent = "";
      for (const line of result.data.items) {
        const row = document.createElement("span");
        row.className = `line ${line.stream}`;
        const where = line.step_name ? `[${line.step_name}] ` : "";
        row.textContent = `${line.at.slice(11, 23)} ${where}${line.text}\n`;
        box.appendChild(row);
        after = line.position;
      }
      if (after === 0 && !result.data.items.length) {
        box.textContent = finished ? "No log lines." : "No log lines yet.";
      }
      if (result.data.next_after === null) break;
    }
    box.scrollTop = box.scrollHeight;
    if (!finished) timer = setTimeout(load, 1000);
  }

  function show(name) {
    step = name;
    after = 0;
    generation += 1;
    clearTimeout(timer);
    box.textContent = "Loading…";
    for (const tab of tabs) tab.setAttribute("aria-selected", String(tab.dataset.step === name));
    load();
  }

  for (const tab of tabs) tab.addEventListener("click", () => show(tab.dataset.step));
  document.querySelector(".tabs")?.addEventListener("keydown", (e) => {
    const at = tabs.indexOf(document.activeElement);
    if (at < 0 || !["ArrowLeft", "ArrowRight"].includes(e.key)) return;
    const next = tabs[(at + (e.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
    next.focus();
    show(next.dataset.step);
  });
  load();

  return {
    finish() {
      if (!finished) {
        finished = true;
        clearTimeout(timer);
        load(); // the last lines
      }
    },
    bindDag(region) {
      for (const node of region.querySelectorAll(".node[data-step]")) {
        const open = () => {
          show(node.dataset.step);
          document.getElementById("logs").scrollIntoView({ block: "nearest" });
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
