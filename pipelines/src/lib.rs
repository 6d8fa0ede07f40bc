/*!
Batch jobs: imports (CSV, Parquet), ingestion of activity text into the vector
index, Polars feature extraction, Linfa training, the model registry, batch
scoring and next-best-action computation. Uses `rapport-crm` and `rapport-models`.

Filled by the pipelines, semantic-memory and next-best-action issues; for now this
crate holds only this doc.
*/
