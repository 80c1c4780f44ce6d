// The status matrix: one small cell per run of a large job, in grid order.

const COLOURS = { s: "#2e7d32", f: "#c62828", k: "#8d6e63", r: "#1565c0", q: "#9e9e9e", c: "#cfd8dc", "?": "#000" };

export function drawMatrix(canvas) {
  if (!canvas) return;
  const codes = canvas.dataset.codes || "";
  const perPage = Number(canvas.dataset.perPage || 100);
  const width = Math.min(canvas.parentElement.clientWidth || 800, 1200);
  const cell = codes.length > 20000 ? 3 : codes.length > 2000 ? 6 : 10;
  const columns = Math.max(Math.floor(width / cell), 1);
  const rows = Math.ceil(codes.length / columns);
  const ratio = window.devicePixelRatio || 1;
  canvas.width = columns * cell * ratio;
  canvas.height = rows * cell * ratio;
  canvas.style.width = `${columns * cell}px`;
  canvas.style.height = `${rows * cell}px`;
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  const gap = cell > 4 ? 1 : 0;
  // One colour at a time: setting fillStyle per cell costs more than drawing the cell.
  const byCode = new Map();
  for (let i = 0; i < codes.length; i++) {
    const code = COLOURS[codes[i]] ? codes[i] : "?";
    if (!byCode.has(code)) byCode.set(code, []);
    byCode.get(code).push(i);
  }
  for (const [code, cells] of byCode) {
    ctx.fillStyle = COLOURS[code];
    for (const i of cells) ctx.fillRect((i % columns) * cell, Math.floor(i / columns) * cell, cell - gap, cell - gap);
  }
  const open = (index) => {
    if (index >= 0 && index < codes.length) location.href = `?page=${Math.floor(index / perPage)}#run-${index}`;
  };
  canvas.onclick = (e) => {
    const box = canvas.getBoundingClientRect();
    open(Math.floor((e.clientY - box.top) / cell) * columns + Math.floor((e.clientX - box.left) / cell));
  };
  canvas.onkeydown = (e) => {
    if (e.key === "Enter") {
      const first = codes.search(/[fk]/);
      open(first >= 0 ? first : 0);
    }
  };
  const done = ["s", "f", "k"].reduce((sum, code) => sum + (byCode.get(code)?.length || 0), 0);
  canvas.title = `${done} of ${codes.length} runs done; Enter opens the first failed run's page`;
}
