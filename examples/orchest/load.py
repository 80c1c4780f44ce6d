"""Step 'Load': makes a day of sales per store (made up, the same every time for a seed)."""

import random

import runyard

days = runyard.get_pipeline_param("days")
stores = runyard.get_step_param("stores")
rng = random.Random(runyard.get_step_param("seed"))
rows = [
    {"day": day, "store": store, "amount": round(rng.uniform(-20, 200), 2)}
    for day in range(days)
    for store in range(stores)
]
print(f"loaded {len(rows)} rows for {days} days and {stores} stores")
runyard.output(rows, name="sales")
