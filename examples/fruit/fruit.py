"""Pipeline and step parameters with the same name, as in Orchest's parameters guide.

    runyard run examples/fruit/fruit.py:fruit
    runyard job create examples/fruit/fruit.py:fruit -p fruit=banana -p fruit=cherry
"""

import runyard


@runyard.step
def candy(*, candy: str = "chocolate", fruit: str = "apple") -> dict[str, str]:
    """Reads both namespaces: its own `fruit` does not overwrite the pipeline's."""
    step_fruit = runyard.get_step_param("fruit")  # "apple"
    vegetable = runyard.get_pipeline_param("vegetable")  # "carrot"
    pipeline_fruit = runyard.get_pipeline_param("fruit")  # "banana"
    print(f"step fruit={step_fruit}, pipeline fruit={pipeline_fruit}, vegetable={vegetable}")
    return {"candy": candy, "fruit": step_fruit, "vegetable": vegetable}


@runyard.pipeline(params={"vegetable": "carrot", "fruit": "banana"})
def fruit():
    candy()
