// Live regions: the part of a page the server renders again (?fragment=live) when the
// event stream says something changed; at most a few times a second.

export function liveRegion(onUpdate = () => {}) {
  const region = document.getElementById("live");
  if (!region) return () => {};
  let timer = null;
  let running = false;
  let again = false;
  async function refresh() {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      const url = new URL(region.dataset.live, location.origin);
      url.searchParams.set("fragment", "live");
      const response = await fetch(url, { headers: { Accept: "text/html" } });
      if (response.ok) {
        const focused = document.activeElement && document.activeElement.id;
        region.innerHTML = await response.text();
        if (focused) document.getElementById(focused)?.focus();
        onUpdate(region);
      }
    } finally {
      running = false;
      if (again) {
        again = false;
        schedule();
      }
    }
  }
  function schedule() {
    if (timer === null) {
      timer = setTimeout(() => {
        timer = null;
        refresh();
      }, 250);
    }
  }
  return schedule;
}
