//! Test and benchmark support, compiled only for tests and with the `testing` feature, never
//! into the Lambda functions: S3 notifications and SQS batches ([`events`]), the schemas tests
//! share ([`schemas`]), sample data, sources on local disk or in memory, and an isolation queue
//! that keeps what it is given.

pub mod events;
pub mod isolation;
pub mod sample;
pub mod schemas;
pub mod shapes;
pub mod sources;
