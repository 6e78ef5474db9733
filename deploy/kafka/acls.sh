#!/bin/sh
# ACLs for one provider (the civil registry), its router and one consumer
# (Social Insurance). Run against a cluster with an admin client config.
set -eu
BOOT=${BOOT:-kafka-1:9093}
ADMIN=${ADMIN:-admin.properties}
P=VN_GOV_000.00.00.G05_HTTTHT          # provider system, topic form
C=VN_GOV_000.00.00.G14_CSDLBH          # consumer system, topic form
acl() { kafka-acls.sh --bootstrap-server "$BOOT" --command-config "$ADMIN" "$@"; }

# The provider's gateway publishes its own datasets only.
acl --add --allow-principal User:gw-000.00.00.G05 --operation Write --operation Describe \
    --resource-pattern-type prefixed --topic "publish.$P."
# The router: reads the provider topics, writes every consumer's topic and dead letters.
acl --add --allow-principal User:router-G05 --operation Read --operation Describe \
    --resource-pattern-type prefixed --topic "publish.$P."
acl --add --allow-principal User:router-G05 --operation Write --operation Describe \
    --resource-pattern-type prefixed --topic "deliver."
acl --add --allow-principal User:router-G05 --operation Write --operation Describe \
    --resource-pattern-type prefixed --topic "deadletter.$P."
acl --add --allow-principal User:router-G05 --operation Read --group "lienthong-feed-router.router-G05"
acl --add --allow-principal User:router-G05 --operation Write --operation Describe --transactional-id router-G05
# The consumer reads its own topics only.
acl --add --allow-principal "User:$C" --operation Read --operation Describe \
    --resource-pattern-type prefixed --topic "deliver.$C."
acl --add --allow-principal "User:$C" --operation Read --resource-pattern-type prefixed --group "$C."
