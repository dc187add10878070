#!/usr/bin/env bash
# Mutation testing of the PBFT core (docs/consensus.md, "Mutation testing").
#
#   scripts/mutants.sh full     every cargo-mutants mutant of aegis-consensus, each tested by
#                               the core's tests and the simulator's (.cargo/mutants.toml);
#                               hours on a 2-core machine. Report in target/mutants-report/.
#   scripts/mutants.sh sample   a quick check by hand: a handful of named mutants, one from each
#                               part of the core, which the fast tests must all catch; under two
#                               minutes once target/mutants is warm. Fails if one survives.
#                               (CI's sample of deliberate bugs is the planted-bug suite,
#                               crates/aegis-sim/tests/planted_bugs.rs.)
#
# Needs cargo-mutants (`cargo install cargo-mutants --locked`).
set -euo pipefail
cd "$(dirname "$0")/.."

# One mutant per part of the core, each caught by a fast test (planted_bugs, the scenario
# specs or the core's own tests), so the sample checks that the tests still see every part.
SAMPLE=(
    'normal_case.rs:.*replace - with \+ in Pbft::try_prepare_and_commit'
    'view_change.rs:.*replace > with < in Pbft::compute_o'
    'checkpoints.rs:.*replace >= with < in Pbft::check_stable'
    'replica.rs:.*replace Pbft::backoff -> u64 with 1'
    'verification.rs:.*replace Pbft::verify_checkpoint_proof -> Result<\(\), RejectReason> with Ok\(\(\)\)'
)

case "${1:-}" in
    full)
        cargo mutants -p aegis-consensus -j 1 -o target/mutants-report "${@:2}"
        ;;
    sample)
        pattern=$(IFS='|'; echo "${SAMPLE[*]}")
        # In place, with the warm target directory; the test command is the fast tests only.
        cargo mutants --no-config --in-place --baseline skip -p aegis-consensus -j 1 \
            --profile mutants --timeout 120 \
            --test-package aegis-consensus --test-package aegis-sim \
            --exclude crates/aegis-consensus/src/pbft/planted.rs \
            --re "$pattern" -o target/mutants-sample \
            -- --lib --test planted_bugs --test reports_and_bounds --test normal_case \
            --test n4f1_checkpoint --test n4f1_silent_primary
        ;;
    *)
        echo "usage: $0 full|sample" >&2
        exit 2
        ;;
esac
