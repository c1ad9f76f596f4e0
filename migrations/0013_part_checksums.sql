-- The flexible checksums (x-amz-checksum-*) computed for each multipart part as it arrived,
-- as a JSON object like the headers of an entry: ListParts returns them and
-- CompleteMultipartUpload builds the object's composite checksum from them.
ALTER TABLE multipart_parts ADD COLUMN checksums TEXT;
