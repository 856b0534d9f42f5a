//! Rewriting DataRows: each result column gets an action when its description arrives,
//! and every row is rebuilt field by field into one reused buffer.

use bytes::Bytes;
use palisade_policy::mask::{DetectorSet, FieldMasker, Format, Masked, PgType, Scan, Session};
use palisade_policy::mask_plan::{MaskRules, ResolvedMask, StatementPlan, Stored};
use tracing::warn;

use super::catalog::Snapshot;
use super::null_mask;
use crate::protocol::results::{self, Field};
use crate::verdict::Verdict;

/// OIDs below this are the system catalogs', which the snapshot leaves out: their columns
/// are judged by name, through the statement's analysis, like computed ones.
const FIRST_NORMAL_OID: u32 = 16384;

enum Action {
    Pass,
    // Boxed: a masker is hundreds of bytes and most columns pass.
    Mask(Box<FieldMasker>),
    Detect(PgType, Format),
}

/// The masks of one result's columns.
pub struct RowMasker {
    actions: Vec<Action>,
    detectors: Option<DetectorSet>,
    /// For rows whose width was not described: the plan to build actions from.
    plan: Option<(StatementPlan, Session, Option<ResolvedMask>)>,
}

pub(super) fn build(
    rules: &MaskRules,
    snapshot: &Snapshot,
    session: &Session,
    detectors: Option<&DetectorSet>,
    plan: &StatementPlan,
    fields: Option<&[Field]>,
    formats: Option<&[i16]>,
) -> RowMasker {
    let Some(fields) = fields else {
        // Rows nobody described (Execute without Describe): the width comes with the
        // first row, and no type is known, so a masked column becomes NULL.
        return RowMasker {
            actions: Vec::new(),
            detectors: None,
            plan: Some((plan.clone(), *session, None)),
        };
    };
    let computed = plan.for_fields(fields.len());
    let mut actions = Vec::with_capacity(fields.len());
    for (i, field) in fields.iter().enumerate() {
        let code = match formats {
            Some(formats) => results::format_of(formats, i),
            None => field.format,
        };
        let ty = snapshot.pg_type(field.type_oid);
        let format = Format::from_code(code);
        let mask = if !rules.has_column_rules() {
            None
        } else if field.table_oid >= FIRST_NORMAL_OID {
            match rules.stored(&snapshot.catalog, field.table_oid, field.attnum) {
                Stored::Known(mask) => mask,
                Stored::Unknown => {
                    // A relation created since the snapshot was read: hide it until the
                    // next statement refreshes the snapshot.
                    warn!(
                        table_oid = field.table_oid,
                        "column of a relation missing from the catalog snapshot masked as NULL"
                    );
                    Some(null_mask("a relation missing from the catalog snapshot"))
                }
            }
        } else {
            computed.get(i).cloned().flatten()
        };
        let action = match (mask, format) {
            (Some(mask), Some(format)) => Action::Mask(Box::new(FieldMasker::new(
                &mask.mask,
                &ty,
                format,
                mask.key.clone(),
                session,
            ))),
            // A format code PostgreSQL does not define: nothing to mask it as.
            (Some(mask), None) => Action::Mask(Box::new(FieldMasker::new(
                &mask.mask,
                &PgType::Other,
                Format::Text,
                None,
                session,
            ))),
            (None, Some(format))
                if detectors.is_some()
                    && matches!(ty, PgType::Text | PgType::Json | PgType::Jsonb) =>
            {
                Action::Detect(ty, format)
            }
            (None, _) => Action::Pass,
        };
        actions.push(action);
    }
    let needs_detectors = actions.iter().any(|a| matches!(a, Action::Detect(..)));
    RowMasker {
        actions,
        detectors: if needs_detectors {
            detectors.cloned()
        } else {
            None
        },
        plan: None,
    }
}

impl RowMasker {
    /// Whether rows need rewriting at all.
    pub fn is_active(&self) -> bool {
        self.plan.is_some() || self.actions.iter().any(|a| !matches!(a, Action::Pass))
    }

    /// Builds actions for undescribed rows of `width` columns.
    fn undescribed(&mut self, width: usize) {
        let Some((plan, session, _)) = &self.plan else {
            return;
        };
        self.actions = plan
            .for_fields(width)
            .into_iter()
            .map(|mask| match mask {
                Some(mask) => Action::Mask(Box::new(FieldMasker::new(
                    &mask.mask,
                    &PgType::Other,
                    Format::Text,
                    None,
                    session,
                ))),
                None => Action::Pass,
            })
            .collect();
    }

    /// The row with every masked field rewritten; unchanged rows go on as they are.
    pub fn rewrite(&mut self, msg: &[u8], out: &mut Vec<u8>) -> Verdict {
        if msg.len() < 7 {
            warn!("malformed DataRow from the server dropped");
            return Verdict::Discard;
        }
        let width = msg
            .get(5..7)
            .map_or(0, |b| i16::from_be_bytes([b[0], b[1]]).max(0) as usize);
        if self.plan.is_some() && self.actions.len() != width {
            self.undescribed(width);
        }
        out.clear();
        out.extend_from_slice(&msg[..7]);
        let mut changed = false;
        let actions = &mut self.actions;
        let detectors = &mut self.detectors;
        let ok = results::data_row_fields(msg, |i, value| {
            let Some(value) = value else {
                out.extend_from_slice(&(-1i32).to_be_bytes());
                return;
            };
            let at = out.len();
            out.extend_from_slice(&[0; 4]);
            let result = match actions.get_mut(i) {
                None | Some(Action::Pass) => None,
                Some(Action::Mask(masker)) => Some(masker.apply(value, out)),
                Some(Action::Detect(ty, format)) => match detectors.as_mut() {
                    Some(d) => match d.scan(ty, *format, value, out) {
                        Scan::Unchanged => None,
                        Scan::Rewritten => Some(Masked::Value),
                        Scan::Null => Some(Masked::Null),
                    },
                    None => None,
                },
            };
            match result {
                None => {
                    out.truncate(at + 4);
                    out.extend_from_slice(value);
                    write_len(out, at);
                }
                Some(Masked::Value) => {
                    changed = true;
                    write_len(out, at);
                }
                Some(Masked::Null) => {
                    changed = true;
                    out.truncate(at);
                    out.extend_from_slice(&(-1i32).to_be_bytes());
                }
            }
        });
        if !ok {
            // The server does not send malformed rows; if one came, nothing of it passes.
            warn!("malformed DataRow from the server dropped");
            return Verdict::Discard;
        }
        if !changed {
            return Verdict::Forward;
        }
        let len = (out.len() - 1) as i32;
        out[1..5].copy_from_slice(&len.to_be_bytes());
        Verdict::Replace(Bytes::copy_from_slice(out))
    }
}

fn write_len(out: &mut [u8], at: usize) {
    let len = (out.len() - at - 4) as i32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}
