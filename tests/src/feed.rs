//! Feeding a pipeline: objects written to its raw bucket (whole, or by multipart upload) and
//! messages sent straight to its ingest queue.

use anyhow::{Result, anyhow};

use crate::deploy::Pipeline;

impl Pipeline {
    /// Uploads an object to the raw bucket and returns its ETag (quotes removed).
    pub async fn put(&self, key: &str, body: Vec<u8>) -> Result<String> {
        let output = self.localstack.s3.put_object().bucket(&self.raw_bucket).key(key).body(body.into()).send().await?;
        Ok(output.e_tag.unwrap_or_default().trim_matches('"').to_string())
    }

    /// Uploads `body` as one part of a multipart upload: S3 gives it a new ETag (`<md5>-1`)
    /// even when the bytes are those of the version it replaces.
    pub async fn put_multipart(&self, key: &str, body: Vec<u8>) -> Result<String> {
        let s3 = &self.localstack.s3;
        let upload = s3.create_multipart_upload().bucket(&self.raw_bucket).key(key).send().await?;
        let id = upload.upload_id.ok_or_else(|| anyhow!("no upload id"))?;
        let part = s3
            .upload_part()
            .bucket(&self.raw_bucket)
            .key(key)
            .upload_id(&id)
            .part_number(1)
            .body(body.into())
            .send()
            .await?;
        let completed = aws_sdk_s3::types::CompletedPart::builder().part_number(1).set_e_tag(part.e_tag).build();
        let output = s3
            .complete_multipart_upload()
            .bucket(&self.raw_bucket)
            .key(key)
            .upload_id(&id)
            .multipart_upload(aws_sdk_s3::types::CompletedMultipartUpload::builder().parts(completed).build())
            .send()
            .await?;
        Ok(output.e_tag.unwrap_or_default().trim_matches('"').to_string())
    }

    /// Sends a raw message body to the ingest queue (a notification S3 never sent, say).
    pub async fn send_to_queue(&self, body: String) -> Result<()> {
        self.localstack.sqs.send_message().queue_url(&self.queue_url).message_body(body).send().await?;
        Ok(())
    }
}
