#!/bin/sh
# Daily PostgreSQL backup to object storage, in two steps that run in two containers of the CronJob's pod:
#   backup.sh dump     (postgres image)  pg_dump -Fc of each database in $DATABASES into $BACKUP_DIR, checked with
#                                        pg_restore --list (a dump that cannot be read fails the job)
#   backup.sh upload   (aws-cli image)   copy the dumps to $BACKUP_URL/<database>/<UTC time>.dump, then delete the
#                                        dumps older than $RETENTION_DAYS days under $BACKUP_URL
# Connection: the libpq variables PGHOST, PGPORT, PGUSER, PGPASSWORD, PGSSLMODE (verify-full), PGSSLROOTCERT.
# Uploads are encrypted server-side: S3_SSE (aws:kms or AES256), with S3_SSE_KMS_KEY_ID when set.
set -eu
: "${DATABASES:?space-separated database names}" "${BACKUP_DIR:?local directory for the dumps}"
stamp_file="$BACKUP_DIR/.stamp"

dump() {
    date -u +%Y-%m-%dT%H%M%SZ >"$stamp_file"
    for db in $DATABASES; do
        pg_dump --format=custom --no-owner --no-privileges --dbname="$db" --file="$BACKUP_DIR/$db.dump"
        pg_restore --list "$BACKUP_DIR/$db.dump" >/dev/null
        echo "dumped $db ($(wc -c <"$BACKUP_DIR/$db.dump") bytes)"
    done
}

upload() {
    : "${BACKUP_URL:?s3://bucket/prefix}" "${RETENTION_DAYS:?days to keep}"
    stamp=$(cat "$stamp_file")
    for db in $DATABASES; do
        aws s3 cp --only-show-errors --sse "${S3_SSE:-aws:kms}" ${S3_SSE_KMS_KEY_ID:+--sse-kms-key-id "$S3_SSE_KMS_KEY_ID"} \
            "$BACKUP_DIR/$db.dump" "$BACKUP_URL/$db/$stamp.dump"
        echo "uploaded $BACKUP_URL/$db/$stamp.dump"
    done
    bucket=${BACKUP_URL#s3://}
    prefix=${bucket#*/}
    bucket=${bucket%%/*}
    cutoff=$(date -u -d "-$RETENTION_DAYS days" +%Y-%m-%dT%H:%M:%SZ)
    aws s3api list-objects-v2 --bucket "$bucket" --prefix "$prefix/" \
        --query "Contents[?LastModified<'$cutoff'].Key" --output text |
        tr '\t' '\n' | grep -v -e '^None$' -e '^$' |
        while read -r key; do
            aws s3 rm --only-show-errors "s3://$bucket/$key"
            echo "expired s3://$bucket/$key"
        done
}

case "${1:-}" in
    dump) dump ;;
    upload) upload ;;
    *) echo "usage: $0 dump|upload" >&2; exit 2 ;;
esac
