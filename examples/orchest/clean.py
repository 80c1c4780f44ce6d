"""Step 'Clean': drops refunds and amounts below the step's minimum."""

import runyard

sales = runyard.get_inputs()["sales"]
minimum = runyard.get_step_param("min_amount")
kept = [row for row in sales if row["amount"] >= minimum]
print(f"kept {len(kept)} of {len(sales)} rows (amount >= {minimum})")
runyard.output(kept, name="clean_sales")
