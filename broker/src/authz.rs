//! The one authorization point: who is asking ([`KafkaPrincipal`]), for what ([`AclOperation`]),
//! on what ([`Resource`]), and the [`Authorizer`] that decides.
//!
//! Every request's [`RequestContext`] carries the principal its connection authenticated as
//! (`User:ANONYMOUS` on a PLAINTEXT listener) and the broker's authorizer. Handlers ask
//! [`RequestContext::authorize`] at the points where Kafka's `KafkaApis` asks its `Authorizer`, and
//! answer a refusal with the code Kafka answers (`TOPIC_AUTHORIZATION_FAILED`,
//! `GROUP_AUTHORIZATION_FAILED`, …). The broker's default authorizer, [`AllowEveryone`], is what
//! Kafka does with no `authorizer.class.name`; ACLs replace it without touching any handler.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use crate::context::RequestContext;

/// A principal, as Kafka's `KafkaPrincipal`: a type (`User`) and a name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KafkaPrincipal {
    pub principal_type: Arc<str>,
    pub name: Arc<str>,
}

impl KafkaPrincipal {
    /// `User:ANONYMOUS`: every connection on a listener without authentication.
    pub fn anonymous() -> Self {
        Self { principal_type: Arc::from("User"), name: Arc::from("ANONYMOUS") }
    }
}

impl fmt::Display for KafkaPrincipal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.principal_type, self.name)
    }
}

/// What a request does to a resource, as Kafka's `AclOperation` (with its wire codes, which the
/// `*_authorized_operations` bit sets of Metadata and DescribeGroups use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AclOperation {
    Read = 3,
    Write = 4,
    Create = 5,
    Delete = 6,
    Alter = 7,
    Describe = 8,
    ClusterAction = 9,
    DescribeConfigs = 10,
    AlterConfigs = 11,
    IdempotentWrite = 12,
}

impl AclOperation {
    /// The operations that apply to each resource type (Kafka's `AclEntry.supportedOperations`),
    /// which `*_authorized_operations` reports.
    pub fn applicable(resource_type: ResourceType) -> &'static [AclOperation] {
        use AclOperation::*;
        match resource_type {
            ResourceType::Topic => &[Read, Write, Create, Delete, Alter, Describe, DescribeConfigs, AlterConfigs],
            ResourceType::Group => &[Read, Describe, Delete, DescribeConfigs, AlterConfigs],
            ResourceType::Cluster => {
                &[Create, ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite, Alter, Describe]
            }
            ResourceType::TransactionalId => &[Describe, Write],
        }
    }
}

/// The kind of a [`Resource`], as Kafka's `ResourceType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceType {
    Topic = 2,
    Group = 3,
    Cluster = 4,
    TransactionalId = 5,
}

/// A resource a request acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource<'a> {
    Cluster,
    Topic(&'a str),
    Group(&'a str),
    TransactionalId(&'a str),
}

impl Resource<'_> {
    pub fn resource_type(&self) -> ResourceType {
        match self {
            Resource::Cluster => ResourceType::Cluster,
            Resource::Topic(_) => ResourceType::Topic,
            Resource::Group(_) => ResourceType::Group,
            Resource::TransactionalId(_) => ResourceType::TransactionalId,
        }
    }

    /// Kafka's name of the cluster resource.
    pub fn name(&self) -> &str {
        match self {
            Resource::Cluster => "kafka-cluster",
            Resource::Topic(n) | Resource::Group(n) | Resource::TransactionalId(n) => n,
        }
    }
}

/// One authorization question.
#[derive(Debug, Clone, Copy)]
pub struct Action<'a> {
    pub principal: &'a KafkaPrincipal,
    pub host: IpAddr,
    pub operation: AclOperation,
    pub resource: Resource<'a>,
}

/// Decides whether an action is allowed (Kafka's `Authorizer`). Called on the request path, so an
/// implementation answers from memory and never blocks.
pub trait Authorizer: Send + Sync + 'static {
    fn authorize(&self, action: &Action<'_>) -> bool;
}

/// Allows everything: Kafka without `authorizer.class.name`.
#[derive(Debug, Default, Clone, Copy)]
pub struct AllowEveryone;

impl Authorizer for AllowEveryone {
    fn authorize(&self, _action: &Action<'_>) -> bool {
        true
    }
}

impl RequestContext {
    /// The one question every handler asks before it acts on `resource`.
    pub fn authorize(&self, operation: AclOperation, resource: Resource<'_>) -> bool {
        let action = Action { principal: &self.principal, host: self.peer.ip(), operation, resource };
        let allowed = self.authorizer.authorize(&action);
        if !allowed {
            tracing::debug!(
                principal = %self.principal,
                host = %action.host,
                operation = ?operation,
                resource_type = ?resource.resource_type(),
                resource = resource.name(),
                "authorization denied"
            );
        }
        allowed
    }

    /// Kafka's `authorizedOperations` bit set of `resource` for this principal (bit n set when
    /// operation code n is allowed), for the `*_authorized_operations` response fields.
    pub fn authorized_operations(&self, resource: Resource<'_>) -> i32 {
        let mut bits = 0i32;
        for op in AclOperation::applicable(resource.resource_type()) {
            if self.authorize(*op, resource) {
                bits |= 1 << (*op as i32);
            }
        }
        bits
    }
}
