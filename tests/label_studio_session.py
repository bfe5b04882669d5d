"""A Label Studio session through label-studio-sdk, run by the Label Studio virtual environment's Python (the
project's environment has neither Label Studio nor its SDK): tests/test_ml_backend.py starts it.

    python label_studio_session.py LABEL_STUDIO_URL TOKEN BACKEND_URL BATCH_FOLDER ANSWERS.json

Creates a project with the batch folder's labeling interface and tasks (without their stored predictions),
connects the ML backend, asks Label Studio to retrieve predictions for every task, annotates the tasks named in
ANSWERS.json ({image id: class}) in the order of their prediction scores (lowest first, as a person sorting by
score would), asks for training, retrieves predictions again, and prints one JSON object: the backend's state
and model versions, and each task's image id with its predictions' scores and classes before and after.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from label_studio_sdk.client import LabelStudio


def predictions_by_image(client: LabelStudio, project_id: int) -> dict[str, list]:
    found = {}
    for task in client.tasks.list(project=project_id, fields="all"):
        found[task.data["image_id"]] = [{"score": prediction.score, "model_version": prediction.model_version,
                                         "choices": prediction.result[0]["value"]["choices"] if prediction.result
                                         else []} for prediction in task.predictions]
    return found


def main() -> None:
    url, token, backend_url, batch, answers_file = sys.argv[1:6]
    answers = json.loads(Path(answers_file).read_text())
    client = LabelStudio(base_url=url, api_key=token)
    project = client.projects.create(title="al-toolkit live queue",
                                     label_config=(Path(batch) / "label_studio_config.xml").read_text())
    tasks = json.loads((Path(batch) / "label_studio_tasks.json").read_text())
    for task in tasks:
        task.pop("predictions", None)
    client.projects.import_tasks(id=project.id, request=tasks)
    backend = client.ml.create(url=backend_url, project=project.id, title="al-toolkit")
    client.actions.create(id="retrieve_tasks_predictions", project=project.id,
                          selected_items={"all": True, "excluded": []})
    before = predictions_by_image(client, project.id)
    by_image = {task.data["image_id"]: task.id for task in client.tasks.list(project=project.id)}
    order = sorted(answers, key=lambda image_id: before[image_id][0]["score"])
    for image_id in order:
        client.annotations.create(id=by_image[image_id], result=[{
            "from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [answers[image_id]]}}])
    client.ml.train(id=backend.id)
    client.actions.create(id="retrieve_tasks_predictions", project=project.id,
                          selected_items={"all": True, "excluded": []})
    after = predictions_by_image(client, project.id)
    state = client.ml.get(id=backend.id)
    print(json.dumps({"state": str(state.state), "model_version": state.model_version, "annotated": order,
                      "before": before, "after": after}))


if __name__ == "__main__":
    main()
