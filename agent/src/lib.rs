/*!
The conversation runtime: LLM backends (OpenAI-compatible and the local GGUF
model) behind one trait, the tool loop with its guards, approvals for writes,
sessions, and the event stream the CLI and the API consume.

Filled by the "conversational agent" issue; for now this crate holds only this doc.
*/
