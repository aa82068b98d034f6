#!/usr/bin/env bash
# it_consent: SPEC section 4's consent rules, checked against the real
# delivered bytes: what each partner's inbox holds after `gateway send` has
# run over loopback mutual TLS. Receivers housing, nav, health (Oslo 0301,
# consent required) and prison (consent not required). Notices in
# tests/data/consent/ (synthetic nins, month + 80):
#   c1 full consent        every recipient gets exactly its granted Needs
#   c2 partial consent     housing two of four Needs, nav a Grant with no
#                          categories (core only, no Needs element), health one
#   c3 refusal             nav has no Grant: held: no consent, nothing in its
#                          inbox; the mental-health follow-up reaches health only,
#                          never the home municipality's housing office
#   c4 Grant for a service that is not a Recipient: rejected
#                          (grant-without-recipient), nothing sent
#   c5 unknown categories  in a Need and in a Grant: rejected (schema-invalid
#                          or unknown-category), nothing sent
#   c6 transfer to another prison: no consent needed, every Need
# For each case: which Need categories each partner's item holds and which
# it does not, no Recipients/Consent/Grant in any item, and which recipients
# are held: no consent. Privacy: no nin and no person's name in any log,
# reason file, or the output of gateway status/list/show.
. "$(dirname "$0")/common.sh"

DATA="$SRC/tests/data/consent"
lab_receiver housing "$ORGNR_HOUSING"
lab_receiver nav "$ORGNR_NAV"
lab_receiver health "$ORGNR_HEALTH"
lab_receiver prison "$ORGNR_PRISON"
lab_gateway_config
lab_drop "$DATA"/*.xml
check "gateway send runs until idle" lab_send
cfg="$LAB/gateway/gateway.conf"
spool="$LAB/gateway/spool"

# items PARTNER NOTICE: the inbox items of NOTICE at PARTNER, one per line.
items() { grep -l "id=\"$2\"" "$LAB/$1"/inbox/new/*.xml 2>/dev/null || true; }
n_items() { items "$1" "$2" | grep -c . || true; }
# cats PARTNER NOTICE: the Need categories in that partner's item, sorted.
cats() {
  local f
  f=$(items "$1" "$2")
  [ -n "$f" ] || { echo "(no item)"; return; }
  grep -o 'category="[a-z-]*"' "$f" | sed 's/category="\(.*\)"/\1/' | sort | tr '\n' ' ' |
    sed 's/ $//'
}
item_lacks() { # item_lacks PARTNER NOTICE TEXT
  local f
  f=$(items "$1" "$2")
  [ -n "$f" ] && ! grep -qF -- "$3" "$f"
}

# ---- c1: full consent ----
n=CONSENT-2027-000001
check "c1: housing delivered" eq "$(state_of $n housing)" delivered
check "c1: nav delivered" eq "$(state_of $n nav)" delivered
check "c1: health delivered" eq "$(state_of $n health)" delivered
check "c1: one item each" eq "$(n_items housing $n)$(n_items nav $n)$(n_items health $n)" 111
check "c1: housing sees housing only" eq "$(cats housing $n)" "housing"
check "c1: nav sees income, employment" eq "$(cats nav $n)" "employment income"
check "c1: health sees mental-health, substance-use" eq "$(cats health $n)" \
  "mental-health substance-use"
check "c1: housing's item lacks the OAT text" item_lacks housing $n "C1 substance-use"
check "c1: the core travels (Person, Release, FollowUp)" \
  bash -c "grep -q '<Release date=\"2027-10-14\"' '$(items nav $n)' &&
           grep -q '<FollowUp ' '$(items nav $n)' && grep -q '<Person ' '$(items nav $n)'"

# ---- c2: partial consent ----
n=CONSENT-2027-000002
check "c2: housing sees housing, income" eq "$(cats housing $n)" "housing income"
check "c2: nav (Grant without categories) sees no Need" eq "$(cats nav $n)" ""
check "c2: nav's item has no Needs element" item_lacks nav $n "<Needs"
check "c2: nav's item still has the core" bash -c "grep -q '<Release ' '$(items nav $n)'"
check "c2: health sees health only" eq "$(cats health $n)" "health"
check "c2: the other need reaches nobody" \
  bash -c "! grep -lq 'C2 other' $LAB/*/inbox/new/*.xml"
check "c2: nobody held" eq "$("$GW" list --config "$cfg" --notice $n --state held | wc -l)" 0

# ---- c3: refusal for one service; health follow-up only to health ----
n=CONSENT-2027-000003
check "c3: nav held: no consent" eq "$(state_of $n nav)" "held: no consent"
check "c3: nav's inbox has nothing of it" eq "$(n_items nav $n)" 0
check "c3: housing delivered" eq "$(state_of $n housing)" delivered
check "c3: housing sees housing only" eq "$(cats housing $n)" "housing"
check "c3: housing's item lacks the health need" item_lacks housing $n 'category="health"'
check "c3: housing's item lacks the mental-health need" item_lacks housing $n "mental-health"
check "c3: housing's item lacks the psychiatric text" item_lacks housing $n "psychiatric"
check "c3: health sees health, mental-health" eq "$(cats health $n)" "health mental-health"
check "c3: the refusal is shown in gateway show" \
  bash -c "'$GW' show --config '$cfg' $n | grep -q 'held: no consent'"

# ---- c4, c5: rejected, nothing sent ----
reason_code() { head -n1 "$spool/rejected/$1.reason" 2>/dev/null; }
check "c4: rejected as grant-without-recipient" \
  eq "$(reason_code c4-grant-without-recipient.xml)" grant-without-recipient
check "c4: the reason names the Grant" \
  grep -q "Grant for service nav" "$spool/rejected/c4-grant-without-recipient.xml.reason"
c5a=$(reason_code c5a-unknown-need-category.xml)
c5b=$(reason_code c5b-unknown-grant-category.xml)
check "c5: unknown Need category rejected ($c5a)" \
  bash -c "[ '$c5a' = schema-invalid ] || [ '$c5a' = unknown-category ]"
check "c5: unknown Grant category rejected ($c5b)" \
  bash -c "[ '$c5b' = schema-invalid ] || [ '$c5b' = unknown-category ]"
for n in CONSENT-2027-000004 CONSENT-2027-000005 CONSENT-2027-000007; do
  check "$n: no message in the store" eq "$("$GW" list --config "$cfg" --notice $n | wc -l)" 0
  check "$n: no inbox item anywhere" \
    bash -c "! grep -lq 'id=\"$n\"' $LAB/*/inbox/new/*.xml"
done

# ---- c6: transfer to another prison ----
n=CONSENT-2027-000006
check "c6: prison delivered" eq "$(state_of $n prison)" delivered
check "c6: prison sees every Need" eq "$(cats prison $n)" "education health substance-use"
check "c6: one message only" eq "$("$GW" list --config "$cfg" --notice $n | wc -l)" 1

# ---- what no partner may learn ----
leaks=$(grep -lE '<(Recipients|Recipient|Consent|Grant)[ >/]' "$LAB"/*/inbox/new/*.xml || true)
check "no inbox item holds Recipients, Consent or Grant" eq "$leaks" ""
check "items in all: housing 3, nav 2, health 3, prison 1" \
  eq "$(count_inbox housing) $(count_inbox nav) $(count_inbox health) $(count_inbox prison)" \
  "3 2 3 1"
check "nine messages delivered, one held" \
  eq "$("$GW" list --config "$cfg" --state delivered | wc -l) $("$GW" list --config "$cfg" --state held | wc -l)" \
  "9 1"

# ---- privacy: no nin or name in logs, reasons, operator output ----
ops="$LAB/operator"
mkdir -p "$ops"
"$GW" status --config "$cfg" > "$ops/status.out" 2>&1 || true
"$GW" list --config "$cfg" > "$ops/list.out" 2>&1 || true
"$GW" list --config "$cfg" --json > "$ops/list-json.out" 2>&1 || true
for n in $(awk '{print $2}' "$ops/list.out" | sort -u); do
  "$GW" show --config "$cfg" "$n" > "$ops/show-$n.out" 2>&1 || true
done
for m in $(awk '{print $1}' "$ops/list.out"); do
  "$GW" show --config "$cfg" "$m" > "$ops/show-$m.out" 2>&1 || true
done
check "operator output was produced" test -s "$ops/list.out"
secrets=$(grep -hoE '(nin|givenName|familyName)="[^"]*"' "$DATA"/*.xml | sed 's/^[a-zA-Z]*="\(.*\)"$/\1/' | sort -u)
leak=""
while IFS= read -r s; do
  [ -n "$s" ] || continue
  if grep -rqsF -- "$s" "$LAB"/*/*.log "$spool/rejected"/*.reason "$ops"; then leak="$leak $s"; fi
done <<< "$secrets"
check "no nin or person's name in any log, reason file or operator output" eq "$leak" ""

finish
