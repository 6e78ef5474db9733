#!/bin/sh
# One SCRAM-SHA-512 credential per principal; passwords come from files the
# operator generated (never from the command line history of a shared host).
set -eu
BOOT=${BOOT:-kafka-1:9093}
ADMIN=${ADMIN:-admin.properties}
for user in gw-000.00.00.G05 router-G05 VN_GOV_000.00.00.G14_CSDLBH; do
  kafka-configs.sh --bootstrap-server "$BOOT" --command-config "$ADMIN" --alter \
    --add-config "SCRAM-SHA-512=[password=$(cat "secrets/$user.password")]" \
    --entity-type users --entity-name "$user"
done
