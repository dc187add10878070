//! How docs_run.rs treats the commands of the docs that do not simply run: those that
//! cannot run in a test (and why, and what checks them instead), those run with a change,
//! and what some must print.

/// Commands that do not run in a test: (text the command contains, why, what checks it).
/// Every entry must match a command of the docs.
pub const NEEDS: &[(&str, &str)] = &[
    (
        "git clone",
        "fetches the repository: the test runs the build under test",
    ),
    (
        "cargo build --release",
        "builds the release binary: the test runs the build under test",
    ),
    (
        "install -m 0755 target/release/aegis",
        "root: installs into /usr/local/bin",
    ),
    ("useradd", "root: creates the system user"),
    (
        "install -d -o aegis",
        "root: the /opt/aegis layout owned by the aegis user",
    ),
    ("chown", "root: files owned by the aegis user"),
    (
        "install -m 0644 deploy/",
        "root: installs under /etc; each file is checked by its own tool in deploy_files.rs and below through /etc mapped to deploy/",
    ),
    (
        "cp deploy/fail2ban",
        "root: installs under /etc/fail2ban (deploy_files.rs: fail2ban-client -t)",
    ),
    (
        "install -o aegis",
        "a certbot deploy hook: root, run by certbot",
    ),
    ("certbot", "Let's Encrypt: a public host name and certbot"),
    (
        "systemctl",
        "systemd: the unit is checked by systemd-analyze verify here and in deploy_files.rs, readiness and reload in deploy_service.rs",
    ),
    ("journalctl", "systemd's journal"),
    ("sudoedit", "an interactive editor"),
    (
        "systemd-analyze security aegis",
        "an installed unit (deploy_files.rs checks the exposure of deploy/systemd/aegis.service)",
    ),
    (
        "logrotate -d",
        "the aegis user the policy's `create` names (deploy_files.rs runs logrotate -d on it)",
    ),
    (
        "logrotate -f",
        "root: rotates the host's /var/log/aegis (deploy_service.rs rotates a running node's log)",
    ),
    ("fail2ban-client status", "a running fail2ban service"),
    (
        "ufw",
        "root: the host's firewall (ufw is not installed here)",
    ),
    ("iptables", "root: the host's firewall"),
    ("tc ", "root: traffic control on eth0"),
    ("iftop", "interactive, on eth0"),
    (
        "nft ",
        "root: nftables rules on the host; checked by nft -c here, run for real in partitions.rs",
    ),
    (
        "127.0.0.2:9091",
        "the nftables drill's network on its own loopback addresses (partitions.rs)",
    ),
    ("nc -zv validator-2.example.net", "another validator host"),
    (
        "for node in validator-2.example.net",
        "other validator hosts (ping, traceroute)",
    ),
    (
        "for validator in validator-2.example.net",
        "other validator hosts",
    ),
    (
        "for node in validator-1 validator-2",
        "other validator hosts",
    ),
    (
        "--nodes http://validator-1:9090",
        "other validator hosts, in a terminal UI (operator_tools.rs drives aegis monitor in tmux)",
    ),
    (
        "api/v1/query",
        "a Prometheus server on the monitoring host (monitoring.rs)",
    ),
    (
        "for i in 0 1 2 3; do aegis run",
        "starts four nodes on the devnet's fixed ports 8000-9093; the test's network runs on free ports",
    ),
    (
        "sleep ",
        "a fixed wait in a walk-through; the test waits on conditions",
    ),
    ("kill %1", "the background nodes of the walk-through above"),
    (
        "aegis run --config",
        "a node in the foreground: the test's network runs it",
    ),
    (
        "aegis --config /opt/aegis/config/production.yaml",
        "a node in the foreground: the test's network runs it",
    ),
    (
        "aegis --config /opt/aegis/config/recovery_peers.yaml &",
        "a node in the background for a recovery walk-through, dialling other hosts",
    ),
    (
        "if [ \"${peer_count:-0}\"",
        "the recovery walk-through's verdict on the background node above",
    ),
    (
        "aegis bench sync",
        "a benchmark of minutes (bench.rs runs it small)",
    ),
];

/// Commands run with a change, and why: (text the command contains, from, to).
pub const REWRITES: &[(&str, &str, &str, &str)] = &[
    (
        "watch -n 2",
        "watch -n 2",
        "bash -c",
        "watch redraws forever; the script it watches runs once",
    ),
    (
        "top -H -p",
        "top -H -p",
        "top -b -n 1 -H -p",
        "top is interactive; one batch frame",
    ),
    (
        "pid=$(systemctl show -p MainPID --value aegis)",
        "$(systemctl show -p MainPID --value aegis)",
        "$(cat /tmp/devnet/node0/data/aegis.lock)",
        "no systemd: the devnet form the comment gives",
    ),
    (
        "pmap -x",
        "$(systemctl show -p MainPID --value aegis)",
        "$(cat /tmp/devnet/node0/data/aegis.lock)",
        "no systemd: the devnet form the comment gives",
    ),
    (
        "tail -F",
        "tail -F",
        "tail -n 20",
        "follows forever; the lines so far",
    ),
    (
        "aegis logs tail",
        "aegis logs tail",
        "timeout 3 aegis logs tail",
        "follows forever; three seconds of it",
    ),
    (
        "aegis testnet --validators 4 --out /tmp/devnet",
        "/tmp/devnet",
        "/tmp/devnet-generated",
        "the test's network is in /tmp/devnet already; --out wants a new directory",
    ),
];

/// What some commands must print: (text the command contains, text in its stdout).
pub const EXPECT: &[(&str, &str)] = &[
    ("aegis --version", "aegis "),
    ("aegis config check", "Configuration is valid"),
    ("aegis verify", "Chain verified"),
    ("aegis keygen", "public_key"),
    ("aegis db migrate", "chema"),
    ("PRAGMA integrity_check", "ok"),
    ("promtool check rules", "SUCCESS: 10 rules found"),
    ("aegis diagnose --bundle", "Diagnostic bundle completed"),
    ("aegis diagnose --assessment", "ssessment"),
    ("aegis health", "healthy"),
    ("aegis logs analyze", "rror"),
    ("promtool test rules", "SUCCESS"),
    ("openssl s_client", "Verify return code: 0 (ok)"),
    (
        "test -f /opt/aegis/data/blockchain.db",
        "Ledger file exists",
    ),
    ("aegis validators check", "validators answered"),
    ("aegis testnet", "Generated testnet"),
    ("grep '^aegis_p2p_peers'", "aegis_p2p_peers 3"),
    ("aegis backup", "Backup of chain"),
    ("pg_isready", "accepting connections"),
];
