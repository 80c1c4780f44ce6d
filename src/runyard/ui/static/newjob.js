// The new-job form: a pipeline's defaults as a grid, validated as it is typed, every run
// of the grid previewed with a checkbox, a schedule with its next fire times, then create.
import { call } from "./api.js";

const PIPELINE_KEY = "pipeline_parameters";

function defaultsOf(schema) {
  const out = {};
  for (const [key, spec] of Object.entries(schema.properties || {})) {
    if ("default" in spec) out[key] = [spec.default];
  }
  return out;
}

// The grid of a processing step's defaults: {"pipeline_parameters": {...}, "step": {...}}.
export function defaultGrid(step) {
  const schema = step.params_schema;
  if (step.kind !== "pipeline") {
    const own = defaultsOf(schema);
    return Object.keys(own).length ? { [step.name]: own } : {};
  }
  const grid = {};
  const pipe = defaultsOf(schema.pipeline || {});
  if (Object.keys(pipe).length) grid[PIPELINE_KEY] = pipe;
  for (const [name, stepSchema] of Object.entries(schema.steps || {})) {
    const own = defaultsOf(stepSchema);
    if (Object.keys(own).length) grid[name] = own;
  }
  return grid;
}

// Where JSON.parse stopped, as "line L, column C" when the engine says a position.
function whereIn(text, error) {
  const match = /position (\d+)/.exec(error.message);
  if (!match) return "";
  const upto = text.slice(0, Number(match[1]));
  const line = upto.split("\n").length;
  return ` (line ${line}, column ${upto.length - upto.lastIndexOf("\n")})`;
}

function valueAt(params, axis) {
  const dot = axis.indexOf(".");
  if (dot < 0) return params.pipeline[axis];
  return (params.steps[axis.slice(0, dot)] || {})[axis.slice(dot + 1)];
}

export function newJobForm() {
  const form = document.getElementById("new-job");
  if (!form) return;
  const $ = (id) => document.getElementById(id);
  const gridBox = $("grid");
  const gridError = $("grid-error");
  const table = $("preview");
  const summary = $("preview-summary");
  const createError = $("create-error");
  let chosen = null; // {name, version}
  let parsed = null; // the grid as parsed, or null while the JSON is bad
  let previewOk = false;
  let timer = null;
  let asked = 0;

  function showGridError(message) {
    gridError.textContent = message;
    gridError.hidden = !message;
    gridBox.setAttribute("aria-invalid", message ? "true" : "false");
  }

  async function choose() {
    const value = $("processing").value;
    table.hidden = true;
    previewOk = false;
    if (!value) {
      chosen = null;
      summary.textContent = "Choose a pipeline to see its runs.";
      return;
    }
    const [name, version] = value.split("|");
    chosen = { name, version };
    const found = await call("GET", `/api/v1/processing-steps/${encodeURIComponent(name)}?version=${encodeURIComponent(version)}`);
    if (!found.ok) {
      summary.textContent = found.message;
      return;
    }
    $("description").textContent = found.data.description || "";
    gridBox.value = JSON.stringify(defaultGrid(found.data), null, 2);
    check();
  }

  function check() {
    const text = gridBox.value.trim() || "{}";
    try {
      parsed = JSON.parse(text);
      if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
        throw new Error("The grid must be a JSON object of parameter lists, e.g. {\"pipeline_parameters\": {\"region\": [\"eu\", \"us\"]}}");
      }
    } catch (error) {
      parsed = null;
      previewOk = false;
      const where = error instanceof SyntaxError ? whereIn(text, error) : "";
      showGridError(error instanceof SyntaxError ? `This is not valid JSON${where}: ${error.message}` : error.message);
      summary.textContent = "Fix the grid to see its runs.";
      table.hidden = true;
      return;
    }
    showGridError("");
    clearTimeout(timer);
    timer = setTimeout(preview, 250);
  }

  async function preview() {
    if (!chosen || parsed === null) return;
    const mine = ++asked;
    const result = await call("POST", `/api/v1/processing-steps/${encodeURIComponent(chosen.name)}/preview`, {
      version: chosen.version,
      grid: parsed,
      limit: 1000,
    });
    if (mine !== asked) return;
    if (!result.ok) {
      previewOk = false;
      showGridError(result.message);
      summary.textContent = "Fix the grid to see its runs.";
      table.hidden = true;
      return;
    }
    previewOk = true;
    const { size, axes, runs } = result.data;
    const head = table.tHead;
    head.innerHTML = "";
    const hr = head.insertRow();
    for (const label of ["Run", "#", ...axes]) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = label;
      hr.appendChild(th);
    }
    const body = table.tBodies[0];
    body.innerHTML = "";
    for (const run of runs) {
      const row = body.insertRow();
      const box = document.createElement("input");
      box.type = "checkbox";
      box.checked = true;
      box.value = String(run.index);
      box.setAttribute("aria-label", `Run ${run.index}`);
      box.addEventListener("change", count);
      row.insertCell().appendChild(box);
      row.insertCell().textContent = String(run.index);
      for (const axis of axes) row.insertCell().textContent = JSON.stringify(valueAt(run.params, axis));
    }
    table.hidden = false;
    table.dataset.size = String(size);
    count();
  }

  function count() {
    const size = Number(table.dataset.size || 0);
    const off = table.querySelectorAll("tbody input:not(:checked)").length;
    const shown = table.tBodies[0].rows.length;
    const more = size > shown ? ` (the first ${shown} are listed)` : "";
    summary.textContent = `${size - off} of ${size} runs selected${more}.`;
  }

  function when() {
    return form.querySelector("input[name=when]:checked").value;
  }

  async function fireTimes() {
    const out = $("cron-times");
    const cron = $("cron").value.trim();
    if (!cron) {
      out.textContent = "";
      return;
    }
    const timezone = $("timezone").value.trim() || "UTC";
    const params = new URLSearchParams({ cron, timezone, count: "5" });
    const result = await call("GET", `/api/v1/schedules/preview?${params}`);
    if (!result.ok) {
      out.innerHTML = "";
      const p = document.createElement("p");
      p.className = "error";
      p.textContent = result.message;
      out.appendChild(p);
      return;
    }
    out.innerHTML = "<p class='sub'>Next 5 fire times:</p>";
    const list = document.createElement("ol");
    list.className = "times";
    for (const t of result.data.fires) {
      const li = document.createElement("li");
      li.textContent = new Date(t).toLocaleString(undefined, { timeZone: timezone, dateStyle: "medium", timeStyle: "short" }) + ` (${timezone})`;
      list.appendChild(li);
    }
    out.appendChild(list);
  }

  $("processing").addEventListener("change", choose);
  gridBox.addEventListener("input", check);
  for (const radio of form.querySelectorAll("input[name=when]")) {
    radio.addEventListener("change", () => {
      for (const part of form.querySelectorAll("[data-when]")) part.hidden = part.dataset.when !== when();
    });
  }
  let cronTimer = null;
  for (const id of ["cron", "timezone"]) {
    $(id).addEventListener("input", () => {
      clearTimeout(cronTimer);
      cronTimer = setTimeout(fireTimes, 300);
    });
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    createError.hidden = true;
    const fail = (message, focus) => {
      createError.textContent = message;
      createError.hidden = false;
      focus?.focus();
    };
    if (!chosen) return fail("Choose a pipeline first.", $("processing"));
    // ``parsed`` follows every edit of the grid (its messages stay where they are).
    if (parsed === null) return fail("The parameter grid is not valid JSON; fix it first. Nothing was created.", gridBox);
    const body = {
      processing: { name: chosen.name, version: chosen.version },
      grid: parsed,
      deselect: [...table.querySelectorAll("tbody input:not(:checked)")].map((b) => Number(b.value)),
      tags: $("tags").value.split(",").map((t) => t.trim()).filter(Boolean),
    };
    if ($("name").value.trim()) body.name = $("name").value.trim();
    if ($("parallel").value) body.max_parallel_runs = Number($("parallel").value);
    if ($("timeout").value) body.run_timeout = Number($("timeout").value);
    const mode = when();
    if (mode === "at") {
      if (!$("at").value) return fail("Give the time to run at.", $("at"));
      body.schedule = { at: new Date($("at").value).toISOString() };
    } else if (mode === "cron") {
      if (!$("cron").value.trim()) return fail("Give a cron expression, e.g. 0 9 * * 1-5.", $("cron"));
      body.schedule = { cron: $("cron").value.trim(), timezone: $("timezone").value.trim() || "UTC" };
    }
    $("create").disabled = true;
    const made = await call("POST", "/api/v1/jobs", body);
    $("create").disabled = false;
    if (!made.ok) return fail(`The job was not created: ${made.message}`);
    location.href = `/jobs/${made.data.id}`;
  });

  if ($("processing").value) choose();
}
