//! The typed tool and its one erasure to JSON. A [`Tool`] says what it takes
//! (`Args`), what it returns (`Output`), what it does to the CRM ([`Effect`]) and
//! who may call it; the blanket impl of [`DynTool`] is the only place where
//! arguments are parsed from JSON and results turned back into JSON.

use std::future::Future;
use std::pin::Pin;

use rapport_crm::model::Role;
use rapport_crm::{Ctx, Id, RecordMap, RecordType, Source, Store, Tx};
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Result, ToolError};

/// What a call does to the CRM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Reads only.
    Read,
    /// Creates or changes records.
    Write,
    /// Deletes or irreversibly merges records: managers and admins only.
    Destructive,
}

impl Effect {
    /// The effect as listings and the audit log spell it (`read`, `write`, `destructive`).
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Read => "read",
            Effect::Write => "write",
            Effect::Destructive => "destructive",
        }
    }

    /// The roles allowed to call a tool of this effect at all (ownership rules
    /// for reps are checked by the tool on the records it touches).
    pub fn default_roles(self) -> &'static [Role] {
        match self {
            Effect::Read => &[Role::Viewer, Role::Rep, Role::Manager, Role::Admin],
            Effect::Write => &[Role::Rep, Role::Manager, Role::Admin],
            Effect::Destructive => &[Role::Manager, Role::Admin],
        }
    }
}

/// Who is calling, decided by the adapter (CLI login, API token, agent session),
/// never by the model's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The workspace every call is confined to.
    pub workspace_id: Id,
    /// The user the call acts as; audit entries and ownership checks use it.
    pub user_id: Id,
    /// The user's role, which decides which tools and changes are allowed.
    pub role: Role,
    /// The adapter the call came through, as the audit log records it.
    pub source: Source,
    /// The agent session the call belongs to, if any.
    pub session_id: Option<String>,
    /// The model acting for the user, if any: recorded with each call.
    pub agent: Option<AgentInfo>,
}

/// Which model and prompt made a call, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentInfo {
    /// Model name as the agent reports it.
    pub model: String,
    /// Version of the system prompt in use, if versioned.
    pub prompt_version: Option<String>,
}

impl Caller {
    /// A user acting through `source`, outside any agent session.
    pub fn user(user: &rapport_crm::model::User, source: Source) -> Caller {
        Caller {
            workspace_id: user.workspace_id,
            user_id: user.id,
            role: user.role,
            source,
            session_id: None,
            agent: None,
        }
    }

    /// The store context for this caller: same workspace, user, source and session.
    pub fn ctx(&self) -> Ctx {
        Ctx {
            workspace_id: self.workspace_id,
            actor_id: Some(self.user_id),
            source: self.source,
            session_id: self.session_id.clone(),
        }
    }

    /// Managers and admins change anything in their workspace.
    pub fn manages(&self) -> bool {
        self.role >= Role::Manager
    }
}

/// The field naming who a record belongs to, for the "reps change their own
/// records" rule; `None` for record types nobody owns.
pub fn owner_field(rt: RecordType) -> Option<&'static str> {
    match rt {
        RecordType::Company
        | RecordType::Contact
        | RecordType::Lead
        | RecordType::Deal
        | RecordType::Activity => Some("owner_id"),
        RecordType::Task => Some("assignee_id"),
        RecordType::User | RecordType::Pipeline | RecordType::Stage => None,
    }
}

/// What a running tool works with: the transaction its writes go into, the
/// store (for reads the transaction cannot do, e.g. loose lookups), and the
/// caller.
pub struct Call {
    /// The call's one transaction; the registry commits it when the call succeeds.
    pub tx: Tx,
    /// The store, for reads outside the transaction (loose lookups).
    pub store: Store,
    /// The store context of the caller.
    pub ctx: Ctx,
    /// Who is calling, for permission checks.
    pub caller: Caller,
    /// Long-lived services (semantic search); absent ones make their tools fail clearly.
    pub services: crate::Services,
}

impl Call {
    /// Refuses a change to `record` unless the caller manages the workspace or
    /// owns the record.
    pub fn ensure_can_change(&self, rt: RecordType, record: &RecordMap) -> Result<()> {
        if self.caller.manages() {
            return Ok(());
        }
        let owner = owner_field(rt)
            .and_then(|f| record.get(f))
            .and_then(Value::as_i64);
        if self.caller.role == Role::Rep && owner == Some(self.caller.user_id) {
            return Ok(());
        }
        let id = record.get("id").and_then(Value::as_i64).unwrap_or_default();
        Err(ToolError::denied(format!(
            "{} may only change their own records; {rt} {id} belongs to {}",
            role_name(self.caller.role),
            owner.map_or("nobody".to_owned(), |o| format!("user {o}"))
        ))
        .with_hint("ask the record's owner or a manager to make this change"))
    }

    /// Fills the owner of a new record with the caller, and refuses a rep who
    /// gives the record to someone else. Also applies to updates that reassign.
    pub fn ensure_owner_value(
        &self,
        rt: RecordType,
        fields: &mut serde_json::Map<String, Value>,
        creating: bool,
    ) -> Result<()> {
        let Some(f) = owner_field(rt) else {
            return Ok(());
        };
        match fields.get(f) {
            None if creating => {
                fields.insert(f.to_owned(), Value::from(self.caller.user_id));
                Ok(())
            }
            Some(v) if !self.caller.manages() && v.as_i64() != Some(self.caller.user_id) => {
                Err(ToolError::denied(format!(
                    "{} may not give a {rt} to another user",
                    role_name(self.caller.role)
                ))
                .with_field(f)
                .with_hint(format!(
                    "leave {f} out (it defaults to you) or ask a manager"
                )))
            }
            _ => Ok(()),
        }
    }
}

pub(crate) fn role_name(role: Role) -> &'static str {
    match role {
        Role::Viewer => "viewers",
        Role::Rep => "reps",
        Role::Manager => "managers",
        Role::Admin => "admins",
    }
}

/// One CRM operation with typed arguments and result.
pub trait Tool: Send + Sync + 'static {
    /// The arguments, parsed from the call's JSON; their schema is what models see.
    type Args: DeserializeOwned + JsonSchema + Send;
    /// The result, returned to the caller as JSON.
    type Output: Serialize + JsonSchema;

    /// snake_case, unique in the registry.
    fn name(&self) -> &'static str;
    /// For a model: what the tool does, when to use it, what it returns.
    fn description(&self) -> String;
    /// What the tool does to the CRM; decides the default roles.
    fn effect(&self) -> Effect;
    /// The roles that may call the tool at all; by default those of its effect.
    fn roles(&self) -> &'static [Role] {
        self.effect().default_roles()
    }
    /// The JSON Schema of the arguments; by default generated from `Args`.
    fn input_schema(&self) -> Value {
        crate::schema::of::<Self::Args>()
    }
    /// Minimal valid arguments, for documentation and the registry-wide test.
    fn example(&self) -> Value;
    /// Whether the tool can run with these services. A tool that cannot is
    /// still callable (and says how to set it up) but is not offered to a
    /// model, which would otherwise call it, fail and try again.
    fn available(&self, _services: &crate::Services) -> bool {
        true
    }
    /// The existing records a call with these arguments would change, so an
    /// approval can check that none changed since the call was proposed.
    fn targets(&self, _args: &Self::Args) -> Vec<(RecordType, Id)> {
        Vec::new()
    }
    /// Runs the operation inside the call's transaction.
    fn call(
        &self,
        cx: &mut Call,
        args: Self::Args,
    ) -> impl Future<Output = Result<Self::Output>> + Send;
}

/// A boxed, sendable future: what type-erased async calls return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A tool with its types erased: JSON in, JSON out. Implemented for every
/// [`Tool`] by the blanket impl below and nowhere else.
pub trait DynTool: Send + Sync {
    /// See [`Tool::name`].
    fn name(&self) -> &'static str;
    /// See [`Tool::description`].
    fn description(&self) -> String;
    /// See [`Tool::effect`].
    fn effect(&self) -> Effect;
    /// See [`Tool::roles`].
    fn roles(&self) -> &'static [Role];
    /// The strict-mode schema of the arguments ([`schema::strict`](crate::schema::strict)).
    fn input_schema(&self) -> Value;
    /// The JSON Schema of the result.
    fn output_schema(&self) -> Value;
    /// See [`Tool::example`].
    fn example(&self) -> Value;
    /// Whether the tool can run with these services (see [`Tool::available`]).
    fn available(&self, services: &crate::Services) -> bool;
    /// Parses arguments into the tool's `Args` without running it.
    fn validate_args(&self, args: &Value) -> Result<()>;
    /// The existing records a call would change (see [`Tool::targets`]).
    fn targets(&self, args: &Value) -> Result<Vec<(RecordType, Id)>>;
    /// Parses the arguments and runs the tool in `cx`; a parse error names the
    /// offending field.
    fn call_json<'a>(&'a self, cx: &'a mut Call, args: Value) -> BoxFuture<'a, Result<Value>>;
}

impl<T: Tool> DynTool for T {
    fn name(&self) -> &'static str {
        Tool::name(self)
    }
    fn description(&self) -> String {
        Tool::description(self)
    }
    fn effect(&self) -> Effect {
        Tool::effect(self)
    }
    fn roles(&self) -> &'static [Role] {
        Tool::roles(self)
    }
    fn input_schema(&self) -> Value {
        crate::schema::strict(Tool::input_schema(self))
    }
    fn output_schema(&self) -> Value {
        crate::schema::of::<T::Output>()
    }
    fn example(&self) -> Value {
        Tool::example(self)
    }
    fn available(&self, services: &crate::Services) -> bool {
        Tool::available(self, services)
    }
    fn validate_args(&self, args: &Value) -> Result<()> {
        serde_path_to_error::deserialize::<_, T::Args>(args)
            .map(drop)
            .map_err(ToolError::from_args)
    }
    fn targets(&self, args: &Value) -> Result<Vec<(RecordType, Id)>> {
        let args: T::Args = serde_path_to_error::deserialize(args).map_err(ToolError::from_args)?;
        Ok(Tool::targets(self, &args))
    }
    fn call_json<'a>(&'a self, cx: &'a mut Call, args: Value) -> BoxFuture<'a, Result<Value>> {
        Box::pin(async move {
            let args: T::Args =
                serde_path_to_error::deserialize(args).map_err(ToolError::from_args)?;
            let out = Tool::call(self, cx, args).await?;
            serde_json::to_value(out)
                .map_err(|e| ToolError::internal(format!("result does not serialize: {e}")))
        })
    }
}
