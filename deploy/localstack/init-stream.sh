#!/bin/sh
# LocalStack ready hook: the demo stream that seed 002's body names.
awslocal kinesis create-stream --stream-name my-stream --shard-count 1
