"""Label sets and their files, annotator pools, QC and aggregation, costs, label sources of a
sweep condition, and human labelling (clips, the queue, the durable appender)."""
