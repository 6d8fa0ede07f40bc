/*!
Every CRM operation as a typed tool: `Args`/`Output` types with JSON Schema, an
effect (read, write, destructive), a permission check, execution in one
transaction and one audit entry. The agent, the REST API, the CLI and MCP are
adapters over this one registry. Depends on `rapport-crm` only.

Filled by the "typed tools" issue; for now this crate holds only this doc.
*/
