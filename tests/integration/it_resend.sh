#!/usr/bin/env bash
# it_resend: a crash between the receiver's 200 and the gateway's commit.
# The gateway is made to look as if it died while sending (the message is
# back in 'sending' with no receipt recorded); after a restart it must resend
# the same bytes, the receiver must answer 'duplicate', the message must be
# delivered, and the partner must still have exactly one inbox item.
. "$(dirname "$0")/common.sh"

lab_receiver housing "$ORGNR_HOUSING"
lab_receiver nav "$ORGNR_NAV"
lab_receiver health "$ORGNR_HEALTH"
lab_gateway_config
lab_drop "$SRC/spool/demo/01-release-full-consent.xml"
check "first run delivers" lab_send
cfg="$LAB/gateway/gateway.conf"
db="$LAB/gateway/gateway.db"
msg=$("$GW" list --config "$cfg" --notice KDI-2027-004101 | awk '$4 == "nav" {print $1}')
check "nav message delivered" eq "$(state_of KDI-2027-004101 nav)" delivered
check "nav has one item" eq "$(count_inbox nav)" 1

# The crash: the gateway never recorded the answer.
sqlite3 "$db" "DELETE FROM receipts WHERE message_id='$msg';
               UPDATE messages SET state='sending' WHERE message_id='$msg';"
check "restart resends and finishes" lab_send
check "delivered again" eq "$(state_of KDI-2027-004101 nav)" delivered
check "the stored receipt says duplicate" \
  bash -c "'$GW' show --config '$cfg' '$msg' | grep -q 'receipt   duplicate, signature verified'"
check "still exactly one inbox item at nav" eq "$(count_inbox nav)" 1
check "receiver log shows the duplicate" grep -q 'duplicate' "$LAB/nav/receiver.log"

finish
