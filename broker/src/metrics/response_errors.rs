//! The error codes a response carries, for `sluice_request_errors_total{api,error}`.
//!
//! Mirrors Kafka's `AbstractResponse.errorCounts()`: a response's top-level error code where it has
//! one, plus every topic-level and partition-level code. `NONE` (0) is counted too, so the metric
//! also shows how many partitions succeeded. A visitor rather than a `Vec` keeps the request path
//! free of allocation. Every response type the broker serves implements it; a new handler adds one
//! impl here (tests live in `metrics/mod.rs`, so impls can be appended at the end).

use kafka_protocol::messages::{
    ApiVersionsResponse, CreateTopicsResponse, DeleteGroupsResponse, DeleteTopicsResponse, DescribeClusterResponse,
    DescribeGroupsResponse, FetchResponse, FindCoordinatorResponse, HeartbeatResponse, JoinGroupResponse,
    LeaveGroupResponse, ListGroupsResponse, ListOffsetsResponse, MetadataResponse, OffsetCommitResponse,
    OffsetDeleteResponse, OffsetFetchResponse, ProduceResponse, SyncGroupResponse,
};

/// Calls `f` with every error code in a response.
pub trait ResponseErrorCodes {
    fn for_each_error_code(&self, f: &mut dyn FnMut(i16));
}

/// Responses whose only code is the top-level one.
macro_rules! top_level_only {
    ($($t:ty),*) => {$(
        impl ResponseErrorCodes for $t {
            fn for_each_error_code(&self, f: &mut dyn FnMut(i16)) {
                f(self.error_code)
            }
        }
    )*};
}

top_level_only!(ApiVersionsResponse, DescribeClusterResponse);

impl ResponseErrorCodes for MetadataResponse {
    fn for_each_error_code(&self, f: &mut dyn FnMut(i16)) {
        // The top-level code (v13+) is set only when the whole request failed; counting its
        // default NONE would count every topic-less Metadata request as one more success.
        if self.error_code != 0 {
            f(self.error_code);
        }
        for t in &self.topics {
            f(t.error_code);
            for p in &t.partitions {
                f(p.error_code);
            }
        }
    }
}

impl ResponseErrorCodes for ProduceResponse {
    fn for_each_error_code(&self, f: &mut dyn FnMut(i16)) {
        for t in &self.responses {
            for p in &t.partition_responses {
                f(p.error_code);
            }
        }
    }
}

impl ResponseErrorCodes for FetchResponse {
    fn for_each_error_code(&self, f: &mut dyn FnMut(i16)) {
        f(self.error_code);
        for t in &self.responses {
            for p in &t.partitions {
                f(p.error_code);
            }
        }
    }
}

impl ResponseErrorCodes for ListOffsetsResponse {
    fn for_each_error_code(&self, f: &mut dyn FnMut(i16)) {
        for t in &self.topics {
            for p in &t.partitions {
                f(p.error_code);
            }
        }
    }
}

impl ResponseErrorCodes for CreateTopicsResponse {
    fn for_each_error_code(&self, f: &mut dyn FnMut(i16)) {
        for t in &self.topics {
            f(t.error_code);
        }
    }
}

impl ResponseErrorCodes for DeleteTopicsResponse {
    fn for_each_error_code(&self, f: &mut dyn FnMut(i16)) {
        for t in &self.responses {
            f(t.error_code);
        }
    }
}

// Consumer groups: one code per response, or per member / partition / group where the API has them.

impl ResponseErrorCodes for FindCoordinatorResponse {
    fn for_each_error_code(&self, f: &mut dyn FnMut(i16)) {
        if self.coordinators.is_empty() {
            f(self.error_code)
        }
        self.coordinators.iter().for_each(|c| f(c.error_code));
    }
}

impl ResponseErrorCodes for JoinGroupResponse {
    fn for_each_error_code(&self, f: &mut dyn FnMut(i16)) {
        f(self.error_code)
    }
}

impl ResponseErrorCodes for SyncGroupResponse {
    fn for_each_error_code(&self, f: &mut dyn FnMut(i16)) {
        f(self.error_code)
    }
}

impl ResponseErrorCodes for HeartbeatResponse {
    fn for_each_error_code(&self, f: &mut dyn FnMut(i16)) {
        f(self.error_code)
    }
}

impl ResponseErrorCodes for LeaveGroupResponse {
    fn for_each_error_code(&self, f: &mut dyn FnMut(i16)) {
        f(self.error_code);
        self.members.iter().for_each(|m| f(m.error_code));
    }
}

impl ResponseErrorCodes for OffsetCommitResponse {
    fn for_each_error_code(&self, f: &mut dyn FnMut(i16)) {
        self.topics.iter().flat_map(|t| t.partitions.iter()).for_each(|p| f(p.error_code));
    }
}

impl ResponseErrorCodes for OffsetFetchResponse {
    fn for_each_error_code(&self, f: &mut dyn FnMut(i16)) {
        f(self.error_code);
        self.topics.iter().flat_map(|t| t.partitions.iter()).for_each(|p| f(p.error_code));
        for g in &self.groups {
            f(g.error_code);
            g.topics.iter().flat_map(|t| t.partitions.iter()).for_each(|p| f(p.error_code));
        }
    }
}

impl ResponseErrorCodes for ListGroupsResponse {
    fn for_each_error_code(&self, f: &mut dyn FnMut(i16)) {
        f(self.error_code)
    }
}

impl ResponseErrorCodes for DescribeGroupsResponse {
    fn for_each_error_code(&self, f: &mut dyn FnMut(i16)) {
        self.groups.iter().for_each(|g| f(g.error_code));
    }
}

impl ResponseErrorCodes for DeleteGroupsResponse {
    fn for_each_error_code(&self, f: &mut dyn FnMut(i16)) {
        self.results.iter().for_each(|r| f(r.error_code));
    }
}

impl ResponseErrorCodes for OffsetDeleteResponse {
    fn for_each_error_code(&self, f: &mut dyn FnMut(i16)) {
        f(self.error_code);
        self.topics.iter().flat_map(|t| t.partitions.iter()).for_each(|p| f(p.error_code));
    }
}

// Config, partition and log-dir admin APIs.
impl ResponseErrorCodes for kafka_protocol::messages::DescribeConfigsResponse {
    fn for_each_error_code(&self, f: &mut dyn FnMut(i16)) {
        for r in &self.results {
            f(r.error_code);
        }
    }
}

impl ResponseErrorCodes for kafka_protocol::messages::AlterConfigsResponse {
    fn for_each_error_code(&self, f: &mut dyn FnMut(i16)) {
        for r in &self.responses {
            f(r.error_code);
        }
    }
}

impl ResponseErrorCodes for kafka_protocol::messages::IncrementalAlterConfigsResponse {
    fn for_each_error_code(&self, f: &mut dyn FnMut(i16)) {
        for r in &self.responses {
            f(r.error_code);
        }
    }
}

impl ResponseErrorCodes for kafka_protocol::messages::CreatePartitionsResponse {
    fn for_each_error_code(&self, f: &mut dyn FnMut(i16)) {
        for r in &self.results {
            f(r.error_code);
        }
    }
}

impl ResponseErrorCodes for kafka_protocol::messages::DeleteRecordsResponse {
    fn for_each_error_code(&self, f: &mut dyn FnMut(i16)) {
        for t in &self.topics {
            for p in &t.partitions {
                f(p.error_code);
            }
        }
    }
}

impl ResponseErrorCodes for kafka_protocol::messages::ListConfigResourcesResponse {
    fn for_each_error_code(&self, f: &mut dyn FnMut(i16)) {
        f(self.error_code);
    }
}

impl ResponseErrorCodes for kafka_protocol::messages::AlterReplicaLogDirsResponse {
    fn for_each_error_code(&self, f: &mut dyn FnMut(i16)) {
        for t in &self.results {
            for p in &t.partitions {
                f(p.error_code);
            }
        }
    }
}

impl ResponseErrorCodes for kafka_protocol::messages::DescribeLogDirsResponse {
    fn for_each_error_code(&self, f: &mut dyn FnMut(i16)) {
        if self.error_code != 0 {
            f(self.error_code);
        }
        for r in &self.results {
            f(r.error_code);
        }
    }
}

impl ResponseErrorCodes for kafka_protocol::messages::ConsumerGroupHeartbeatResponse {
    fn for_each_error_code(&self, f: &mut dyn FnMut(i16)) {
        f(self.error_code)
    }
}

impl ResponseErrorCodes for kafka_protocol::messages::ConsumerGroupDescribeResponse {
    fn for_each_error_code(&self, f: &mut dyn FnMut(i16)) {
        for g in &self.groups {
            f(g.error_code);
        }
    }
}

impl ResponseErrorCodes for kafka_protocol::messages::InitProducerIdResponse {
    fn for_each_error_code(&self, f: &mut dyn FnMut(i16)) {
        f(self.error_code)
    }
}

top_level_only!(kafka_protocol::messages::AddOffsetsToTxnResponse, kafka_protocol::messages::EndTxnResponse);

impl ResponseErrorCodes for kafka_protocol::messages::AddPartitionsToTxnResponse {
    fn for_each_error_code(&self, f: &mut dyn FnMut(i16)) {
        if self.error_code != 0 {
            f(self.error_code);
        }
        let v3 = self.results_by_topic_v3_and_below.iter();
        for t in v3.chain(self.results_by_transaction.iter().flat_map(|r| r.topic_results.iter())) {
            for p in &t.results_by_partition {
                f(p.partition_error_code);
            }
        }
    }
}

impl ResponseErrorCodes for kafka_protocol::messages::TxnOffsetCommitResponse {
    fn for_each_error_code(&self, f: &mut dyn FnMut(i16)) {
        for t in &self.topics {
            for p in &t.partitions {
                f(p.error_code);
            }
        }
    }
}

impl ResponseErrorCodes for kafka_protocol::messages::UpdateFeaturesResponse {
    fn for_each_error_code(&self, f: &mut dyn FnMut(i16)) {
        f(self.error_code);
        for r in &self.results {
            f(r.error_code);
        }
    }
}

impl ResponseErrorCodes for kafka_protocol::messages::DescribeTransactionsResponse {
    fn for_each_error_code(&self, f: &mut dyn FnMut(i16)) {
        for s in &self.transaction_states {
            f(s.error_code);
        }
    }
}

impl ResponseErrorCodes for kafka_protocol::messages::ListTransactionsResponse {
    fn for_each_error_code(&self, f: &mut dyn FnMut(i16)) {
        f(self.error_code)
    }
}

impl ResponseErrorCodes for kafka_protocol::messages::DescribeProducersResponse {
    fn for_each_error_code(&self, f: &mut dyn FnMut(i16)) {
        for t in &self.topics {
            for p in &t.partitions {
                f(p.error_code);
            }
        }
    }
}

impl ResponseErrorCodes for kafka_protocol::messages::ElectLeadersResponse {
    fn for_each_error_code(&self, f: &mut dyn FnMut(i16)) {
        f(self.error_code);
        for t in &self.replica_election_results {
            for p in &t.partition_result {
                f(p.error_code);
            }
        }
    }
}

impl ResponseErrorCodes for kafka_protocol::messages::AlterPartitionReassignmentsResponse {
    fn for_each_error_code(&self, f: &mut dyn FnMut(i16)) {
        f(self.error_code);
        for t in &self.responses {
            for p in &t.partitions {
                f(p.error_code);
            }
        }
    }
}

top_level_only!(kafka_protocol::messages::ListPartitionReassignmentsResponse);

impl ResponseErrorCodes for kafka_protocol::messages::DescribeQuorumResponse {
    fn for_each_error_code(&self, f: &mut dyn FnMut(i16)) {
        f(self.error_code);
        for t in &self.topics {
            for p in &t.partitions {
                f(p.error_code);
            }
        }
    }
}

impl ResponseErrorCodes for kafka_protocol::messages::DescribeTopicPartitionsResponse {
    fn for_each_error_code(&self, f: &mut dyn FnMut(i16)) {
        for t in &self.topics {
            f(t.error_code);
            for p in &t.partitions {
                f(p.error_code);
            }
        }
    }
}

impl ResponseErrorCodes for kafka_protocol::messages::OffsetForLeaderEpochResponse {
    fn for_each_error_code(&self, f: &mut dyn FnMut(i16)) {
        for t in &self.topics {
            for p in &t.partitions {
                f(p.error_code);
            }
        }
    }
}
