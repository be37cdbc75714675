#!/bin/sh
# The command `pgelect run` supervises in tests/cli.   child.sh DIR MODE [ARGS]
#   DIR/started   gets "<pid> <fencing token> <identity>" at every start
#   DIR/events    gets "term <pid>" when SIGTERM arrives
#   MODE work            loop until SIGTERM, then exit 0
#        ignore-term     record SIGTERM and keep running (only SIGKILL ends it)
#        exit CODE SECS  exit with CODE after SECS seconds
#        grandchild      start "sleep 300" in the background, record its pid in DIR/grandchild, wait
#        stamp           like work, and append "<identity> <date +%s%N>" to DIR/stamps every 20 ms;
#                        its stderr goes to DIR/command.err (pgelect's may be a full pipe)
dir=$1
mode=$2
echo "$$ $PGELECT_FENCING_TOKEN $PGELECT_IDENTITY" >>"$dir/started"
echo "[$PGELECT_IDENTITY] fencing token $PGELECT_FENCING_TOKEN group $PGELECT_GROUP table $PGELECT_TABLE"
case $mode in
work)
    trap 'echo "term $$" >>"$dir/events"; exit 0' TERM
    while :; do sleep 0.05; done
    ;;
ignore-term)
    trap 'echo "term $$" >>"$dir/events"' TERM
    while :; do sleep 0.05; done
    ;;
exit)
    sleep "$4"
    exit "$3"
    ;;
stamp)
    exec 2>>"$dir/command.err"
    trap 'echo "term $$" >>"$dir/events"; exit 0' TERM
    while :; do
        echo "$PGELECT_IDENTITY $(date +%s%N)" >>"$dir/stamps"
        sleep 0.02
    done
    ;;
grandchild)
    sleep 300 &
    echo $! >"$dir/grandchild"
    wait
    ;;
esac
