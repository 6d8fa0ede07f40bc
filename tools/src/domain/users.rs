//! Users: listing them, and reassigning a record's owner.

use super::*;

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoleArg {
    Viewer,
    Rep,
    Manager,
    Admin,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListUsersArgs {
    /// Only users with this role.
    pub role: Option<RoleArg>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct UserOut {
    pub id: Id,
    pub name: String,
    pub email: String,
    pub role: String,
    pub timezone: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ListUsersOutput {
    pub users: Vec<UserOut>,
}

pub struct ListUsers;

impl Tool for ListUsers {
    type Args = ListUsersArgs;
    type Output = ListUsersOutput;

    fn name(&self) -> &'static str {
        "list_users"
    }
    fn description(&self) -> String {
        "List the workspace's users (id, name, email, role, time zone); use it to find the id of an owner or assignee. Read-only.".into()
    }
    fn effect(&self) -> Effect {
        Effect::Read
    }
    fn example(&self) -> Value {
        json!({"role": "rep"})
    }
    async fn call(&self, cx: &mut Call, a: ListUsersArgs) -> Result<ListUsersOutput> {
        let filter = match a.role {
            Some(r) => Filter::eq("role", json!(r)),
            None => Filter::cond("id", Op::Gt, 0),
        };
        let users = list_all(cx, RecordType::User, filter).await?;
        Ok(ListUsersOutput {
            users: users
                .iter()
                .map(|u| UserOut {
                    id: id_of(u),
                    name: text(u, "name"),
                    email: text(u, "email"),
                    role: text(u, "role"),
                    timezone: text(u, "timezone"),
                })
                .collect(),
        })
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReassignArgs {
    pub record_type: Taggable,
    pub id: Id,
    /// The user who takes the record over (the assignee, for a task).
    pub owner_id: Id,
}

pub struct ReassignOwner;

impl Tool for ReassignOwner {
    type Args = ReassignArgs;
    type Output = RecordMap;

    fn name(&self) -> &'static str {
        "reassign_owner"
    }
    fn description(&self) -> String {
        "Give a company, contact, lead, deal, activity or task to another user (a task's assignee). Managers and admins only; find user ids with list_users. Returns the record.".into()
    }
    fn effect(&self) -> Effect {
        Effect::Write
    }
    fn roles(&self) -> &'static [Role] {
        &[Role::Manager, Role::Admin]
    }
    fn example(&self) -> Value {
        json!({"record_type": "deal", "id": 1, "owner_id": 2})
    }
    fn targets(&self, a: &ReassignArgs) -> Vec<(RecordType, Id)> {
        vec![(a.record_type.record_type(), a.id)]
    }
    async fn call(&self, cx: &mut Call, a: ReassignArgs) -> Result<RecordMap> {
        let rt = a.record_type.record_type();
        let field = crate::tool::owner_field(rt).unwrap_or("owner_id");
        cx.tx
            .get_dyn(&cx.ctx, rt, a.id)
            .await
            .map_err(|e| ToolError::from(e).with_field("id"))?;
        cx.tx
            .get_dyn(&cx.ctx, RecordType::User, a.owner_id)
            .await
            .map_err(|e| ToolError::from(e).with_field("owner_id"))?;
        Ok(cx
            .tx
            .update_dyn(&cx.ctx, rt, a.id, json!({ field: a.owner_id }))
            .await?)
    }
}
