// The pages' behaviour: live updates, actions through the API, the forms.
import { call, clearToken, follow, notice, setToken } from "./api.js";
import { liveRegion } from "./live.js";
import { drawMatrix } from "./matrix.js";
import { newJobForm } from "./newjob.js";
import { runLogs } from "./runlogs.js";

const page = document.body.dataset.page;

document.querySelector("[data-action=logout]")?.addEventListener("click", () => {
  clearToken();
  location.href = "/login";
});

async function act(button, jobId) {
  const action = button.dataset.action;
  if (button.dataset.confirm && !confirm(button.dataset.confirm)) return;
  const path = `/api/v1/jobs/${jobId}`;
  button.disabled = true;
  const endpoint = action === "retry-failed" ? "retry" : action;
  const result = action === "delete" ? await call("DELETE", path) : await call("POST", `${path}/${endpoint}`);
  button.disabled = false;
  if (!result.ok) {
    notice(result.message, "error");
    return false;
  }
  if (action === "delete") {
    location.href = "/";
    return true;
  }
  const said = {
    stop: () => `Stop asked: ${result.data.killed.length} queued run(s) killed, ${result.data.requested.length} running run(s) stopping.`,
    "retry-failed": () => (result.data.run_ids.length ? `${result.data.run_ids.length} failed or killed run(s) queued again.` : "No failed run to retry."),
    pause: () => "Schedule paused.",
    resume: () => "Schedule resumed.",
    "run-now": () => "A batch of runs was made now.",
    start: () => "The job's runs are queued.",
  };
  notice(said[action] ? said[action]() : "Done.", "ok");
  return true;
}

if (page === "jobs") {
  const refresh = liveRegion();
  follow({}, (event) => {
    if (["run_state", "job_created", "job_deleted", "run_retry"].includes(event.kind) || event.kind.startsWith("job")) refresh();
  });
}

if (page === "job") {
  const jobId = document.body.dataset.job;
  const matrix = () => drawMatrix(document.getElementById("matrix"));
  const refresh = liveRegion(matrix);
  matrix();
  follow({ job_id: jobId }, (event) => {
    if (event.kind !== "step_state") refresh();
  });
  document.querySelector(".actions")?.addEventListener("click", async (e) => {
    const button = e.target.closest("button[data-action]");
    if (!button) return;
    if ((await act(button, jobId)) && ["pause", "resume", "start"].includes(button.dataset.action)) location.reload();
    refresh();
  });
}

if (page === "run") {
  const runId = document.body.dataset.run;
  const logs = runLogs(runId);
  const refresh = liveRegion((region) => logs.bindDag(region));
  logs.bindDag(document.getElementById("live"));
  if (document.body.dataset.finished !== "yes") {
    follow({ run_id: runId }, () => refresh());
  }
}

// The Data pages follow data jobs through the event stream: a state change
// (data_job_state) or datums counted (data_job_progress); the event's job id is the job
// set's global ID and its step name the pipeline.
const DATA_KINDS = ["data_job_state", "data_job_progress"];

if (page === "data") {
  const refresh = liveRegion();
  follow({}, (event) => {
    if (DATA_KINDS.includes(event.kind)) refresh();
  });
}

if (page === "data-pipeline") {
  const pipeline = document.body.dataset.pipeline;
  const refresh = liveRegion();
  follow({}, (event) => {
    if (DATA_KINDS.includes(event.kind) && event.step_name === pipeline) refresh();
  });
}

if (page === "data-job" && document.body.dataset.finished !== "yes") {
  const { datajob, pipeline } = document.body.dataset;
  const refresh = liveRegion();
  follow({}, (event) => {
    if (DATA_KINDS.includes(event.kind) && event.job_id === datajob && event.step_name === pipeline) refresh();
  });
}

if (page === "new-job") newJobForm();

if (page === "schedules") {
  document.querySelector("main").addEventListener("click", async (e) => {
    const button = e.target.closest("button[data-action]");
    if (button && (await act(button, button.dataset.job))) location.reload();
  });
}

if (page === "login") {
  const form = document.getElementById("login");
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = form.token.value.trim();
    const error = document.getElementById("login-error");
    const result = await call("GET", "/api/v1/jobs?limit=1", undefined, {
      headers: { Authorization: `Bearer ${text}` },
      login: false,
    });
    if (result.ok) {
      setToken(text);
      location.href = form.dataset.next || "/";
    } else {
      error.textContent = result.status === 401 ? "That token is not valid; check it, or make one with `runyard token create`." : result.message;
      error.hidden = false;
      form.token.focus();
    }
  });
}
