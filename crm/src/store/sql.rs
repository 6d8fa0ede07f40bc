//! From checked filters, sorts and cursors to sea-query expressions. Column
//! names come only from the schema definitions, values only as bound
//! parameters, so nothing a caller sends is ever spliced into SQL text.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sea_query::{Alias, Cond, Condition, Expr, Func, LikeExpr, Order, SelectStatement, SimpleExpr};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::conn::Backend;
use crate::error::{Error, Result};
use crate::filter::{Checked, Direction, Op, Target};
use crate::schema::{FieldDef, FieldType, Scalar, TableDef};

pub fn col(name: &str) -> Expr {
    Expr::col(Alias::new(name))
}

pub fn table(def: &TableDef) -> Alias {
    Alias::new(def.table)
}

/// A value bound for a column of the given type. NULLs are typed: PostgreSQL
/// refuses a text NULL for a JSONB or timestamp column.
pub fn value_as(ty: FieldType, s: &Scalar) -> sea_query::Value {
    use sea_query::Value as V;
    match (s, ty) {
        (Scalar::Null, FieldType::Id | FieldType::Int | FieldType::Ref(_)) => V::BigInt(None),
        (Scalar::Null, FieldType::Float) => V::Double(None),
        (Scalar::Null, FieldType::Bool) => V::Bool(None),
        (Scalar::Null, FieldType::Timestamp) => V::ChronoDateTimeUtc(None),
        (Scalar::Null, FieldType::Date) => V::ChronoDate(None),
        (Scalar::Null, FieldType::Json) => V::Json(None),
        _ => value(s),
    }
}

pub fn value(s: &Scalar) -> sea_query::Value {
    use sea_query::Value as V;
    match s {
        Scalar::Null => V::String(None),
        Scalar::Text(t) => V::String(Some(Box::new(t.clone()))),
        Scalar::Int(i) => V::BigInt(Some(*i)),
        Scalar::Float(x) => V::Double(Some(*x)),
        Scalar::Bool(b) => V::Bool(Some(*b)),
        Scalar::Timestamp(t) => V::ChronoDateTimeUtc(Some(Box::new(*t))),
        Scalar::Date(d) => V::ChronoDate(Some(Box::new(*d))),
        Scalar::Json(j) => V::Json(Some(Box::new(j.clone()))),
    }
}

/// The SQL expression a filter target compares.
fn target_expr(target: &Target, backend: Backend) -> SimpleExpr {
    match target {
        Target::Column(f) => col(f.name).into(),
        // Custom attributes compare as text on both backends.
        Target::Custom(key) => match backend {
            Backend::Postgres => Expr::cust_with_values("(\"custom\" ->> $1)", [key.clone()]),
            Backend::Sqlite => Expr::cust_with_values(
                "CAST(json_extract(\"custom\", ?) AS TEXT)",
                [format!("$.\"{key}\"")],
            ),
        },
    }
}

pub fn condition(checked: &Checked, backend: Backend) -> Condition {
    match checked {
        Checked::And(parts) => parts
            .iter()
            .fold(Cond::all(), |c, p| c.add(condition(p, backend))),
        Checked::Or(parts) => parts
            .iter()
            .fold(Cond::any(), |c, p| c.add(condition(p, backend))),
        Checked::IsNull(t, true) => Cond::all().add(Expr::expr(target_expr(t, backend)).is_null()),
        Checked::IsNull(t, false) => {
            Cond::all().add(Expr::expr(target_expr(t, backend)).is_not_null())
        }
        Checked::In(t, values) => {
            Cond::all().add(Expr::expr(target_expr(t, backend)).is_in(values.iter().map(value)))
        }
        Checked::Cmp(t, op, v) => {
            let e = Expr::expr(target_expr(t, backend));
            let v = value(v);
            let expr = match op {
                Op::Eq => e.eq(v),
                // "not equal" includes records where the field is empty.
                Op::Ne => {
                    return Cond::any()
                        .add(e.clone().ne(v))
                        .add(Expr::expr(target_expr(t, backend)).is_null());
                }
                Op::Lt => e.lt(v),
                Op::Lte => e.lte(v),
                Op::Gt => e.gt(v),
                Op::Gte => e.gte(v),
                Op::Contains => {
                    let needle = match v {
                        sea_query::Value::String(Some(s)) => s.to_lowercase(),
                        _ => String::new(),
                    };
                    Expr::expr(Func::lower(target_expr(t, backend)))
                        .like(LikeExpr::new(format!("%{}%", escape_like(&needle))).escape('\\'))
                }
                Op::In | Op::IsNull => unreachable!("handled by their own Checked variants"),
            };
            Cond::all().add(expr)
        }
    }
}

fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Where the previous page ended: the sort value and id of its last row.
#[derive(Debug, Serialize, Deserialize)]
struct CursorData {
    f: String,
    d: Direction,
    v: Value,
    id: i64,
}

pub fn encode_cursor(
    field: &FieldDef,
    dir: Direction,
    last: &serde_json::Map<String, Value>,
) -> String {
    let data = CursorData {
        f: field.name.to_owned(),
        d: dir,
        v: last.get(field.name).cloned().unwrap_or(Value::Null),
        id: last.get("id").and_then(Value::as_i64).unwrap_or_default(),
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&data).unwrap_or_default())
}

/// Orders rows by the sort field (empty values last) and then by id, so the
/// order is total and pages never overlap or skip.
pub fn apply_order(stmt: &mut SelectStatement, field: &FieldDef, dir: Direction) {
    let order = match dir {
        Direction::Asc => Order::Asc,
        Direction::Desc => Order::Desc,
    };
    if field.name != "id" {
        if field.nullable {
            stmt.order_by_expr(col(field.name).is_null(), Order::Asc);
        }
        stmt.order_by(Alias::new(field.name), order.clone());
    }
    stmt.order_by(Alias::new("id"), order);
}

/// The condition selecting rows after the cursor's position.
pub fn after_cursor(cursor: &str, field: &FieldDef, dir: Direction) -> Result<Condition> {
    let bad = |why: &str| {
        Error::invalid(
            "cursor",
            format!(
                "{why}; pass the next_cursor of the previous page unchanged, with the same sort"
            ),
        )
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor.trim())
        .map_err(|_| bad("not a cursor this server issued"))?;
    let data: CursorData =
        serde_json::from_slice(&bytes).map_err(|_| bad("not a cursor this server issued"))?;
    if data.f != field.name || data.d != dir {
        return Err(bad("the cursor belongs to a different sort"));
    }
    let nullable = FieldDef {
        nullable: true,
        min: None,
        max: None,
        ..*field
    };
    let last = Scalar::from_json(&nullable, &data.v).map_err(|_| bad("the cursor is damaged"))?;
    let id_past = |id: i64| match dir {
        Direction::Asc => col("id").gt(id),
        Direction::Desc => col("id").lt(id),
    };
    if field.name == "id" {
        return Ok(Cond::all().add(id_past(data.id)));
    }
    if last == Scalar::Null {
        return Ok(Cond::all()
            .add(col(field.name).is_null())
            .add(id_past(data.id)));
    }
    let v = value(&last);
    let beyond = match dir {
        Direction::Asc => col(field.name).gt(v.clone()),
        Direction::Desc => col(field.name).lt(v.clone()),
    };
    let mut cond = Cond::any()
        .add(beyond)
        .add(Cond::all().add(col(field.name).eq(v)).add(id_past(data.id)));
    if field.nullable {
        cond = cond.add(col(field.name).is_null());
    }
    Ok(cond)
}
