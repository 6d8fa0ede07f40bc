/*!
Local inference, in process: the sentence embedder and sentiment classifier on
Candle, the local chat model on llama.cpp, and the model artifacts they load
(manifest, fetch by package name, sha256 check, cache). Depends on none of
Rapport's other crates.
*/
