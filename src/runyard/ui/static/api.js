// Calling the REST API from the pages: the token, JSON requests, the event stream.

const COOKIE = "runyard_token";

export function token() {
  for (const part of document.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === COOKIE) return decodeURIComponent(rest.join("="));
  }
  return "";
}

export function setToken(text) {
  const secure = location.protocol === "https:" ? "; Secure" : "";
  document.cookie = `${COOKIE}=${encodeURIComponent(text)}; Path=/; SameSite=Strict; Max-Age=2592000${secure}`;
}

export function clearToken() {
  document.cookie = `${COOKIE}=; Path=/; SameSite=Strict; Max-Age=0`;
}

function headers(extra = {}) {
  const found = token();
  return found ? { ...extra, Authorization: `Bearer ${found}` } : extra;
}

// A JSON request; resolves to {ok, status, data, message} and never throws for HTTP errors.
// A 401 sends the browser to the login page, unless options.login is false.
export async function call(method, path, body, options = {}) {
  const init = { method, headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  if (options.headers) init.headers = { ...init.headers, ...options.headers };
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    return { ok: false, status: 0, data: null, message: `The server cannot be reached (${error.message}).` };
  }
  if (response.status === 401 && options.login !== false) {
    location.href = `/login?next=${encodeURIComponent(location.pathname + location.search)}`;
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  const message = response.ok ? "" : (data && data.message) || `${response.status} ${response.statusText}`;
  return { ok: response.ok, status: response.status, data, message, response };
}

// Read a Server-Sent Events stream of the API with fetch (so the token can be sent),
// calling onEvent(kind, data) for each event; reconnects after errors from the last id
// seen (as ?after=). Ends when onEvent returns false; returns a function that stops it.
export function stream(path, query, onEvent) {
  let last = null;
  let stopped = false;
  const controller = new AbortController();
  async function connect() {
    while (!stopped) {
      const params = new URLSearchParams(query);
      if (last !== null) params.set("after", String(last));
      try {
        const response = await fetch(`${path}?${params}`, { headers: headers(), signal: controller.signal });
        if (!response.ok) throw new Error(String(response.status));
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true });
          let cut;
          while ((cut = buffer.indexOf("\n\n")) >= 0) {
            const lines = buffer.slice(0, cut).split("\n");
            buffer = buffer.slice(cut + 2);
            const field = (name) => lines.filter((l) => l.startsWith(`${name}: `)).map((l) => l.slice(name.length + 2));
            const data = field("data").join("\n");
            const [id] = field("id");
            const [kind] = field("event");
            if (id !== undefined) last = Number(id);
            if (data && onEvent(kind || "message", JSON.parse(data)) === false) {
              stopped = true;
              controller.abort();
              return;
            }
          }
        }
      } catch (error) {
        if (stopped) return;
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
  connect();
  return () => {
    stopped = true;
    controller.abort();
  };
}

// Follow /api/v1/events (every state change, or a job's or a run's), calling onEvent(event).
export function follow(query, onEvent) {
  return stream("/api/v1/events", query, (_kind, data) => {
    onEvent(data);
  });
}

export function notice(message, kind = "info") {
  const box = document.getElementById("notice");
  if (!box) return;
  box.textContent = message;
  box.className = `notice ${kind}`;
  box.hidden = !message;
}
