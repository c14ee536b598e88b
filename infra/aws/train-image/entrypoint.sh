#!/bin/sh
# The training image's entrypoint. The managed engine (AWS Batch on Fargate) runs the image
# outside Lambda with the command `train-task` and the run state in EDGELOOP_STATE; every
# Lambda step passes its handler name (e.g. dist/training-steps.train) to the Lambda runtime.
if [ "$1" = "train-task" ]; then
  exec node dist/train-task.mjs
fi
exec /lambda-entrypoint.sh "$@"
