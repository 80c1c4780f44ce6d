"""Step 'Summarize': total and mean amount per store."""

import statistics

import runyard

rows = runyard.get_inputs()["clean_sales"]
by_store: dict[int, list[float]] = {}
for row in rows:
    by_store.setdefault(row["store"], []).append(row["amount"])
summary = {
    store: {"total": round(sum(a), 2), "mean": round(statistics.mean(a), 2)}
    for store, a in sorted(by_store.items())
}
for store, figures in summary.items():
    print(f"store {store}: total {figures['total']}, mean {figures['mean']}")
runyard.output(summary, name="summary")
