//! The shape of a GraphQL operation as the authorizer needs it: query, mutation or
//! subscription, and the names of its root fields (through fragments, without aliases).

use std::collections::{BTreeSet, HashMap};

use async_graphql::parser::parse_query;
use async_graphql::parser::types::{
    DocumentOperations, FragmentDefinition, OperationType, Selection, SelectionSet,
};
use async_graphql::{Name, Positioned};

use crate::auth::token::Operation;

/// Distinct root field names collected at most; more can only be invalid anyway.
const MAX_ROOT_FIELDS: usize = 256;

/// Kind and root fields of the operation a request will run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationShape {
    pub kind: Operation,
    pub root_fields: Vec<String>,
}

/// The shape of the operation `operation_name` selects in `query`; `None` when the
/// document does not parse or names no single operation (execution will then fail
/// before any resolver runs).
pub fn shape(query: &str, operation_name: Option<&str>) -> Option<OperationShape> {
    let document = parse_query(query).ok()?;
    let operation = match (&document.operations, operation_name) {
        (DocumentOperations::Single(op), _) => op,
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name)?,
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops.values().next()?,
        _ => return None,
    };
    let kind = match operation.node.ty {
        OperationType::Query => Operation::Query,
        OperationType::Mutation => Operation::Mutation,
        OperationType::Subscription => Operation::Subscription,
    };
    let mut fields = BTreeSet::new();
    let mut visited = Vec::new();
    collect(
        &operation.node.selection_set.node,
        &document.fragments,
        &mut fields,
        &mut visited,
    );
    Some(OperationShape {
        kind,
        root_fields: fields.into_iter().collect(),
    })
}

fn collect<'a>(
    selection_set: &'a SelectionSet,
    fragments: &'a HashMap<Name, Positioned<FragmentDefinition>>,
    fields: &mut BTreeSet<String>,
    visited: &mut Vec<&'a str>,
) {
    for selection in &selection_set.items {
        if fields.len() >= MAX_ROOT_FIELDS {
            return;
        }
        match &selection.node {
            Selection::Field(field) => {
                fields.insert(field.node.name.node.to_string());
            }
            Selection::InlineFragment(fragment) => {
                collect(&fragment.node.selection_set.node, fragments, fields, visited);
            }
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.as_str();
                if visited.contains(&name) {
                    continue;
                }
                visited.push(name);
                if let Some(fragment) = fragments.get(&spread.node.fragment_name.node) {
                    collect(&fragment.node.selection_set.node, fragments, fields, visited);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(shape: Option<OperationShape>) -> (Operation, Vec<String>) {
        let shape = shape.expect("parses");
        (shape.kind, shape.root_fields)
    }

    #[test]
    fn finds_kind_and_root_fields_through_aliases_and_fragments() {
        let (kind, root) = fields(shape(
            "mutation M { a: createDevice(x: 1) { id } ...F } fragment F on Mutation { deleteDevice { id } ... on Mutation { logout { revoked } } }",
            None,
        ));
        assert_eq!(kind, Operation::Mutation);
        assert_eq!(root, ["createDevice", "deleteDevice", "logout"]);
    }

    #[test]
    fn picks_the_named_operation() {
        let doc = "query A { me { role } } mutation B { logout { revoked } }";
        assert_eq!(fields(shape(doc, Some("B"))).0, Operation::Mutation);
        assert_eq!(fields(shape(doc, Some("A"))).0, Operation::Query);
        assert!(shape(doc, None).is_none());
        assert!(shape("{ unclosed", None).is_none());
    }

    #[test]
    fn survives_fragment_cycles() {
        let (_, root) = fields(shape("{ ...F } fragment F on Query { me { role } ...F }", None));
        assert_eq!(root, ["me"]);
    }
}
