#!/bin/sh
# Starts Alertmanager on a copy of the alertmanager.yml beside this script whose webhook URL is
# ALERT_WEBHOOK_URL (Alertmanager reads no environment variable). The copy is written to the
# data folder, ALERTMANAGER_DATA (the image's /alertmanager), which is also its storage path;
# ALERTMANAGER names the binary (the image's /bin/alertmanager); arguments go to Alertmanager.
set -eu
: "${ALERT_WEBHOOK_URL:?set ALERT_WEBHOOK_URL to the URL that receives the alerts}"
data=${ALERTMANAGER_DATA:-/alertmanager}
# index/substr, not sub(): a URL's "&" would be sub()'s "matched text"
awk -v placeholder="http://alert-webhook.invalid/kkbox" '
  i = index($0, placeholder) {
    $0 = substr($0, 1, i - 1) ENVIRON["ALERT_WEBHOOK_URL"] substr($0, i + length(placeholder))
  }
  { print }
' "$(dirname "$0")/alertmanager.yml" > "$data/alertmanager.yml"
exec "${ALERTMANAGER:-/bin/alertmanager}" --config.file="$data/alertmanager.yml" \
  --storage.path="$data" "$@"
