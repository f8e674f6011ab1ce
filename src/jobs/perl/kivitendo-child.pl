# kivitendo-task-server's Perl child: one fresh process per job run, running kivitendo's own code.
#
# The server starts `perl -` with this file on stdin, in the kivitendo installation (cwd = ROOT),
# in a process group of its own. It reads one JSON request line from file descriptor 3, sets kivitendo
# up for the client the way kivitendo's task server does before each job, performs the action and
# writes one JSON result line back to descriptor 3. STDOUT and STDERR belong to kivitendo's code:
# the server only logs them, so nothing printed there can be mistaken for the result.
#
# Bookkeeping stays with the server (claim, history row, last_run_at/next_run_at, failure mail):
# `run_job` calls the package's run() the way SL::DB::BackgroundJob::run does, without writing a
# history row or rescheduling.
#
# Result: { ok => 1, result => ..., data => ... } or
#         { ok => 0, phase => 'init'|'load'|'run', error => TEXT, missing_module => NAME? }
use strict;

my $ROOT;
BEGIN {
  require Cwd;
  $ROOT = Cwd::getcwd();
  # kivitendo's own versions of some CPAN modules first, the installation itself last.
  unshift @INC, "$ROOT/modules/override";
  push    @INC, $ROOT;
}

use Fcntl qw(F_GETFD F_SETFD FD_CLOEXEC);
use IO::Handle ();
use JSON::PP ();
use POSIX ();

my $json = JSON::PP->new->utf8->canonical->allow_nonref->allow_blessed;

# KTS_PERL_TIMING=1: one stderr line per phase of a run (milliseconds since the fork), for profiling.
my ($timing_t0, $timing);
if ($ENV{KTS_PERL_TIMING}) { require Time::HiRes; $timing_t0 = Time::HiRes::time(); }
sub timing { return unless $timing_t0; $timing .= sprintf(' %s=%d', $_[0], 1000 * (Time::HiRes::time() - $timing_t0)); }

# Should our parent die without stopping us (the server killed with -9, or the preloaded parent),
# the kernel sends us SIGKILL: no orphan keeps running a job nobody records.
# prctl(PR_SET_PDEATHSIG, SIGKILL); best effort, Linux only.
sub set_pdeathsig {
  require Config;
  my %prctl = (x86_64 => 157, aarch64 => 167, i686 => 172, i386 => 172);
  my ($arch) = ($Config::Config{archname} // '') =~ m/^(\w+?)-/;
  syscall($prctl{$arch}, 1, 9) if $^O eq 'linux' && $arch && $prctl{$arch};
}
set_pdeathsig();
# the server died before the prctl took effect
POSIX::_exit(0) if $ENV{KTS_SERVER_PID} && getppid() != $ENV{KTS_SERVER_PID};

# Modules every run needs before its client is initialised. The preloaded parent loads them once;
# a cold child loads them in initialize_kivitendo. The order matters: see there.
my @PRELOAD = qw(CGI SL::LxOfficeConf SL::Auth SL::LXDebug SL::Locale SL::Form SL::InstanceConfiguration
                 SL::Request SL::Layout::None SL::DB::BackgroundJob SL::Helper::DateTime);

my $control;
my $phase = 'init';
my $job;
my $standby;       # the preloaded parent's child forked ahead of its run: { pid, fh }
my ($config_read, $config_signature);   # the configuration the preloaded parent read

if (($ARGV[0] // '') eq 'preload') {
  preload_parent();
  POSIX::_exit(0);
}

open($control, '+<&=', 3) or die "kivitendo-task-server child: no control descriptor 3: $!\n";
binmode $control;
# Programs kivitendo starts (latex, a printer command) must not inherit the control channel.
fcntl($control, F_SETFD, fcntl($control, F_GETFD, 0) | FD_CLOEXEC);
$| = 1;

my $line    = <$control>;
my $request = eval { $json->decode($line // '') } or reply({ ok => 0, phase => 'init', error => "invalid request: $@" });
serve($request);

# Preloaded parent (Minion's and Resque's model): kivitendo's modules are loaded once, before any
# client is initialised — no database connection, no session here. Each request line on STDIN
#   { run => N, socket => PATH, pgappname => TEXT, request => {...} }
# forks one child that does exactly what a cold child does after loading the modules, in a session
# (process group) of its own, with stdout, stderr and the result channel on three connections to
# the server's socket PATH. STDOUT carries the parent's reports to the server, one JSON line each:
#   { ready => 1, ms => N } | { ready => 0, error => TEXT }, { run => N, pid => P },
#   { run => N, pid => P, exit => CODE, signal => SIG }, { retire => 1 } (take no more runs)
# The parent exits when STDIN closes (after its children) or when it was idle for KTS_PRELOAD_IDLE s.
sub preload_parent {
  require IO::Select;
  require IO::Socket::UNIX;
  require Time::HiRes;
  STDOUT->autoflush(1);
  my $report = sub { print STDOUT $json->encode($_[0]), "\n" };
  my $t0 = Time::HiRes::time();
  for my $module (@PRELOAD) {
    next if eval "require $module; 1";
    # The cold child reports this properly (a missing module by name): the server falls back to it.
    $report->({ ready => 0, error => "$@" });
    POSIX::_exit(0);
  }
  warm_parent();
  $report->({ ready => 1, ms => int(1000 * (Time::HiRes::time() - $t0)) });

  my $idle   = $ENV{KTS_PRELOAD_IDLE} || 0;
  my $me     = $$;
  my %kids;               # pid => run
  my $last   = Time::HiRes::time();
  my $eof    = 0;
  my $buffer = '';
  my $last_request;
  local $SIG{CHLD} = sub { };   # interrupts select, reaping is done below
  my $select = IO::Select->new(\*STDIN);
  while (1) {
    while ((my $pid = waitpid(-1, POSIX::WNOHANG())) > 0) {
      undef $standby if $standby && $standby->{pid} == $pid;
      my $run = delete $kids{$pid};
      next unless defined $run;
      my $status = $?;
      $report->({ run => $run, pid => $pid, exit => ($status & 127) ? undef : $status >> 8, signal => ($status & 127) || undef });
      $last = Time::HiRes::time();
    }
    last if $eof && !%kids;
    last if !%kids && $idle && Time::HiRes::time() - $last >= $idle;
    my $wait = %kids || !$idle ? 1 : $idle - (Time::HiRes::time() - $last) + 0.05;
    $wait = 0.05 if $wait < 0.05;
    my @ready = $select->can_read($wait);
    next unless @ready;
    my $n = sysread(STDIN, $buffer, 65536, length $buffer);
    next if !defined $n && $!{EINTR};
    if (!$n) { $eof = 1; $select->remove(\*STDIN); next; }
    while ($buffer =~ s/^([^\n]*)\n//) {
      my $line = $1;
      next unless $line =~ /\S/;
      my $msg = eval { $json->decode($line) } or next;
      if (ref $msg->{learn} eq 'ARRAY') {
        # A standby forked before has not got them: it makes way for one that has.
        if (learn_modules($msg->{learn}) && $standby && $last_request) {
          close $standby->{fh};
          $standby = fork_standby($me, $last_request);
        }
        next;
      }
      $report->({ retire => 1 }) if !config_for($msg->{request});
      my $pid = take_run($msg, $me);
      if (!defined $pid) {
        $report->({ run => $msg->{run}, pid => undef, error => "fork failed: $!" });
        next;
      }
      $kids{$pid} = $msg->{run};
      $last_request = $msg->{request};
      $report->({ run => $msg->{run}, pid => $pid });
      $last = Time::HiRes::time();
      learn_package($msg->{request}{params}{package_name});
      # The next run's child, forked now rather than when that run is asked for.
      $standby = fork_standby($me, $msg->{request});
    }
  }
  # The standby reads end-of-file and exits.
  close $standby->{fh} if $standby;
}

# A child forked ahead of its run (Resque's and Minion's pre-forking): it has left the parent's
# session and waits for its request on a pipe, so a run does not wait for the fork of a 200 MiB
# parent. Forked only after a run was taken, so it has the configuration that run found.
sub fork_standby {
  my ($parent, $previous) = @_;
  pipe(my $reader, my $writer) or return undef;
  my $pid = fork;
  return undef unless defined $pid;
  if (!$pid) {
    close $writer;
    child_leaves_parent($parent);
    note_inherited_modules();   # before the head start, whose modules the parent is to learn too
    head_start($previous);
    my $line = <$reader>;
    if (!defined $line) {
      drop_connections();
      POSIX::_exit(0);
    }
    close $reader;
    forked_child($json->decode($line));
    POSIX::_exit(70);
  }
  close $reader;
  $writer->autoflush(1);
  return { pid => $pid, fh => $writer };
}

# The standby's head start (a connection pool's idea, without sharing a connection): while it waits,
# it sets kivitendo up for the client and user of the run it was forked after — the usual next run:
# the web UI's import after its preview, the jobs of a one-client installation — up to both database
# connections, in its own process, with the configuration the parent read; it writes nothing (no
# session). Its run then does the whole set-up as always and finds the connections in kivitendo's
# own cache (SL::DBConnect::Cache), or opens others for another client. Two connection set-ups off
# the run's path; they close with the standby (when the parent stops after perl_preload_idle).
my @head_start;
sub head_start {
  my ($previous) = @_;
  return unless $previous && $previous->{kts_config_read} && $previous->{client_id};
  local $ENV{PGAPPNAME} = 'kivitendo-task-server perl standby';
  local $SIG{__WARN__} = sub { };
  my $ok = eval {
    set_up_client($previous);
    set_up_user($previous);
    @head_start = ($::auth->dbconnect(1), SL::DB->client->dbh);
    # Reading the job row once builds Rose's query for it (a read, nothing written).
    SL::DB::Manager::BackgroundJob->find_by(id => $previous->{params}{job_id}) if $previous->{action} eq 'run_job';
    # The run replaces $::auth, whose DESTROY would disconnect it: the cache keeps it for the run.
    delete $::auth->{dbh};
    1;
  };
  drop_head_start() unless $ok;
}

# The run takes over the standby's connections under its own application_name (its backends carry
# the job, for the clean-up); a connection lost while it waited, or set up with a configuration that
# has changed since, is dropped with the rest, and the run connects as without a head start.
sub adopt_head_start {
  my ($request) = @_;
  my @handles = grep { $_ && $_->{Active} } splice @head_start;
  return unless @handles;
  return drop_head_start() unless $request->{kts_config_read};
  for my $dbh (@handles) {
    my $ok = eval {
      local $dbh->{RaiseError} = 1;
      local $dbh->{PrintError} = 0;
      $dbh->do('SET application_name = ' . $dbh->quote($ENV{PGAPPNAME}));
      $dbh->commit unless $dbh->{AutoCommit};
      1;
    };
    return drop_head_start() unless $ok;
  }
}

sub drop_head_start {
  @head_start = ();
  drop_connections();
  return;
}

# Every database handle kivitendo's caches hold, and the Rose objects that hold them.
sub drop_connections {
  eval { SL::DBConnect::Cache->disconnect_all_and_clear; 1 };
  eval { SL::DB->db_cache->clear; 1 };
}

# The run's child: the standby if it is still there, else a fresh fork. Returns its pid.
sub take_run {
  my ($msg, $parent) = @_;
  if (my $s = $standby) {
    undef $standby;
    local $SIG{PIPE} = 'IGNORE';
    my $ok = print { $s->{fh} } $json->encode($msg), "\n";
    close $s->{fh};
    return $s->{pid} if $ok;
  }
  my $pid = fork;
  return $pid if !defined $pid || $pid;
  child_leaves_parent($parent);
  forked_child($msg);
  POSIX::_exit(70);
}

# kivitendo's configuration, read once by the parent the way a run reads it, so that a run need not
# parse it again. Returns false when the file changed since (or another file is asked for): that
# run reads it itself, and the parent is to be replaced — kivitendo applies the config's
# [environment] once per process, so the new one needs a fresh parent.
sub config_signature {
  my ($file) = @_;
  require Time::HiRes;
  return join "\0", $file, map { my @s = Time::HiRes::stat($_); @s ? "@s[0, 1, 7, 9, 10]" : '-' }
    "$ROOT/config/kivitendo.conf.default", "$ROOT/config/lx_office.conf.default", $file;
}
sub config_for {
  my ($request) = @_;
  my $signature = config_signature($request->{config_file});
  if (!$config_read) {
    $config_read = 1;
    # A config that does not read is left to the run, which reports why.
    local $SIG{__WARN__} = sub { };
    $config_signature = $signature if eval { SL::LxOfficeConf->read($request->{config_file}); 1 };
  }
  return 0 if !defined $config_signature || $signature ne $config_signature;
  $request->{kts_config_read} = 1;
  return 1;
}

# What a warm run would otherwise load or parse itself, none of it client-specific: the locale
# texts (a run spent three quarters of its time parsing locale/de/all). Job packages follow as they
# are run (learn_package), and kivitendo's modules the runs load (learn_modules).
sub warm_parent {
  # Locale->new calls $::lxdebug; a real LXDebug must not be made here: it reads its configuration
  # once per process, and the parent has none.
  local $::lxdebug = bless {}, 'KTS::QuietDebug';
  for my $all (sort glob 'locale/*/all') {
    my ($country) = $all =~ m{^locale/([^/]+)/all$} or next;
    eval { Locale->new($country); 1 };
  }
  # Locale's first load switches STDOUT/STDERR to :utf8; the parent's reports are bytes.
  binmode STDOUT;
  binmode STDERR;
  # Every job's data is YAML (data_as_hash, the package's own saves): YAML.pm loads its loader,
  # dumper and types only when first used, which would be in every run.
  eval { require SL::YAML; SL::YAML::Load(SL::YAML::Dump({ kts => [ 1 ] })); 1 };
}

# A job package, with what it requires when it runs (CsvImport: its controller, the web UI's main
# hand-off; CreatePeriodicInvoices' printing: the LaTeX driver), is loaded once its first run (or
# action run on its behalf: params.package_name) was taken, for the runs after it: the parent holds the
# packages this installation runs, as kivitendo's server does, not all of them.
my %RUN_TIME_MODULES = (CsvImport => [ 'SL::Controller::CsvImport' ], CreatePeriodicInvoices => [ 'SL::Template::LaTeX' ]);
my %learned;
sub learn_package {
  my ($name) = @_;
  return if !defined $name || $name !~ m/^[A-Z][A-Za-z0-9]+$/ || $learned{$name}++;
  parent_require($_) for "SL::BackgroundJob::$name", @{ $RUN_TIME_MODULES{$name} || [] };
}

# kivitendo's modules a run loaded that the parent did not have (the SL::DB classes, controllers and
# helpers its package requires as it goes), reported by the server after the run: loaded here for the
# runs after it. So the parent holds what this installation's runs use — as kivitendo's server
# process does — instead of every SL::DB class (10 MiB more) or loading them again in every run.
# Only kivitendo's own (SL::), which bring what they use.
# Returns whether anything new was loaded. A module that does not load here (one that needs a client
# as it loads) is not tried again: every run would report it.
my %not_learnable;
sub learn_modules {
  my ($modules) = @_;
  my $new = 0;
  for my $module (@$modules) {
    next unless defined $module && $module =~ m/^SL(?:::\w+)+$/;
    (my $file = "$module.pm") =~ s{::}{/}g;
    next if $INC{$file} || $not_learnable{$module};
    if (parent_require($module)) { $new = 1 } else { $not_learnable{$module} = 1 }
  }
  return $new;
}

# A module that does not load in the parent is left for the run, which reports it as a cold perl would.
# Returns whether it loaded.
sub parent_require {
  my ($module) = @_;
  my $ok = eval "require $module; 1";
  if (!$ok) {
    # Forget the failed load, so the run's own require fails with the real reason again
    # ("Can't locate …", the compile error) instead of "Attempt to reload … aborted".
    delete $INC{$_} for grep { !defined $INC{$_} } keys %INC;
  }
  # A fork must never share a database socket: nothing loaded may keep a connection.
  drop_connections();
  return $ok;
}

{
  package KTS::QuietDebug;
  our $AUTOLOAD;
  sub AUTOLOAD { return }
  sub DESTROY { }
}

# One run in a child of the preloaded parent: its own session, PGAPPNAME of its job, its output to
# the server, then the same code as a cold child.
sub child_leaves_parent {
  my ($parent) = @_;
  $SIG{CHLD} = 'DEFAULT';
  POSIX::setsid();
  set_pdeathsig();
  POSIX::_exit(71) if getppid() != $parent;
  srand();
}

my %inherited;   # a forked child's modules from its parent (see learn_modules)
sub note_inherited_modules {
  %inherited = map { $_ => 1 } grep { defined $INC{$_} } keys %INC;
}

sub forked_child {
  my ($msg) = @_;
  $timing_t0 = Time::HiRes::time() if $timing_t0;
  note_inherited_modules() unless %inherited;
  $ENV{PGAPPNAME} = $msg->{pgappname};
  adopt_head_start($msg->{request});
  my %sock;
  for my $name (qw(control stdout stderr)) {
    my $s = IO::Socket::UNIX->new(Peer => $msg->{socket}, Type => Socket::SOCK_STREAM())
      or do { print STDERR "kivitendo-task-server child $$: cannot connect to $msg->{socket}: $!\n"; POSIX::_exit(72) };
    binmode $s;
    $s->autoflush(1);
    print $s "$name\n";
    $sock{$name} = $s;
  }
  open(STDIN,  '<',  '/dev/null');
  open(STDOUT, '>&', $sock{stdout}) or POSIX::_exit(73);
  open(STDERR, '>&', $sock{stderr}) or POSIX::_exit(73);
  # As Locale's first load leaves them in a cold perl (here the parent loaded the locale texts).
  binmode STDOUT, ':utf8';
  binmode STDERR, ':utf8';
  close $sock{stdout};
  close $sock{stderr};
  # As a cold perl's STDERR: unbuffered, so the last words before a crash reach the log.
  STDERR->autoflush(1);
  $control = $sock{control};
  fcntl($control, F_SETFD, fcntl($control, F_GETFD, 0) | FD_CLOEXEC);
  $| = 1;
  timing('connected');
  serve($msg->{request});
}

sub serve {
  my ($request) = @_;
  $phase = 'init';
  my $ok = eval {
    initialize_kivitendo($request);
    my $action = $request->{action};
    my $answer;
    if ($action eq 'run_job') {
      $answer = run_job($request->{params} // {});
    } else {
      $phase = 'load';
      die "no such action '$action'\n" unless defined $request->{action_source};
      my $code = $request->{action_source};
      eval "package main; no strict 'refs';\n#line 1 \"actions/$action.pl\"\n$code\n; 1" or die $@;
      my $sub = main->can("kts_action_$action") or die "actions/$action.pl does not define kts_action_$action\n";
      $phase  = 'run';
      my $result = $sub->($request->{params} // {});
      $answer = { ok => 1, result => $result };
    }
    finish_kivitendo();
    reply($answer);
    1;
  };
  if (!$ok) {
    my $error = '' . $@;
    eval { finish_kivitendo() };
    my %answer = (ok => 0, phase => $phase, error => $error);
    # kivitendo's failure row carries the job's data as it is after the failed run.
    $answer{data} = eval { $job->data } if $job;
    # "Can't locate Foo/Bar.pm in @INC (you may need to install the Foo::Bar module) ..."
    if ($error =~ m{^Can't locate (\S+)\.pm in \@INC}) {
      (my $module = $1) =~ s{/}{::}g;
      $answer{missing_module} = $module;
    }
    reply(\%answer);
  }
}

sub reply {
  my ($answer) = @_;
  # What the run loaded beyond its parent's modules, for the parent to learn (learn_modules).
  if (%inherited) {
    $answer->{kts_modules} = [ sort map { (my $m = $_) =~ s{/}{::}g; $m =~ s/\.pm$//; $m }
                               grep { m{^SL/.+\.pm$} && defined $INC{$_} && !$inherited{$_} } keys %INC ];
  }
  print STDERR "kts-timing$timing\n" if $timing;
  # _exit skips END blocks, File::Temp's clean-up among them: remove the run's temporary files
  # (kivitendo's merge_pdfs and parse_and_create_pdf leave UNLINK files under users/) the way
  # task_server.pl does after each pass — before the answer, which ends the run for the server.
  eval { File::Temp::cleanup() } if defined &File::Temp::cleanup;
  # Output first, the answer last: once all three are closed the run is over for the server, which
  # need not wait for the kernel to tear down this process (a fork of a 200 MiB parent).
  close STDOUT;
  close STDERR;
  print $control $json->encode($answer), "\n";
  close $control;
  # Then skip global destruction: DESTROY noise after the result would only confuse the log, and
  # the database handles and session are closed already (finish_kivitendo).
  POSIX::_exit(0);
}

# What kivitendo's task server sets up before each job of a client: config, debug log, locale,
# form, auth with the client, instance configuration, request, a session (this run's own: see
# start_own_session), the task server user's %myconfig and its locale.
sub initialize_kivitendo {
  my ($req) = @_;

  foreach my $locale (qw(de_DE.UTF-8 en_US.UTF-8 C.UTF-8)) {
    last if POSIX::setlocale(POSIX::LC_CTYPE(), $locale);
  }

  # In this order (@PRELOAD); a no-op in a child of the preloaded parent, which loaded them already.
  # SL::Auth before anything that loads SL::YAML: SL::Auth uses YAML.pm, and SL::YAML then takes
  # YAML.pm instead of YAML::XS, as in task_server.pl and the web UI. Job data is read and written
  # with the same module (its formatting, and `null` is the string "null" there).
  eval "require $_; 1" or die $@ for @PRELOAD;
  timing('modules');
  # A child of the preloaded parent has it already when it is unchanged on disk.
  if (!$req->{kts_config_read}) {
    %::lx_office_conf = ();
    SL::LxOfficeConf->read($req->{config_file});
  }
  timing('config');

  set_up_client($req);
  timing('set_client');
  die "the authentication database has no session tables\n" unless $::auth->session_tables_present;
  start_own_session();
  set_up_user($req);
  timing('user_locale');
  $phase = 'load';
}

sub set_up_client {
  my ($req) = @_;
  # As in a fresh process: the auth connection is made without the user's DateStyle (a standby's
  # head start set %::myconfig up already), so that it is the one kivitendo's cache holds.
  %::myconfig = ();
  $::lxdebug = LXDebug->new;
  $::locale  = Locale->new($::lx_office_conf{system}->{language});
  $::form    = Form->new;
  $::auth    = SL::Auth->new;

  $::auth->set_client($req->{client_id}) or die "client ID $req->{client_id} not found in the authentication database\n";
  $::form->{__ERROR_HANDLER} = sub { die @_ };

  $::instance_conf = SL::InstanceConfiguration->new;
  $::request       = SL::Request->new(cgi => CGI->new({}), layout => SL::Layout::None->new);
}

sub set_up_user {
  my ($req) = @_;
  my $login = $req->{login};
  %::myconfig = $::auth->read_user(login => $login);
  die "cannot find user $login\n" unless $::myconfig{login};
  $::locale = Locale->new($::myconfig{countrycode} || $::lx_office_conf{system}->{language})
    or die "cannot find locale for user $login\n";
}

# A session of this run's own, never one restored from a cookie. kivitendo's task server calls
# restore_session, which takes the session id from the HTTP_COOKIE variable of a daemon the web UI
# started (CGI reads cookies from the environment): its jobs then run in, and write back, the session
# of the user who clicked "start" or is waiting for an import. Ours would destroy it at the end, so
# it is neither restored nor named from outside: a fresh random id (create_or_refresh_session without
# a current one), which no auth.session row, cookie or session_files folder names yet. The server
# removes the web request's variables at start-up already; this holds whatever perl inherits.
# kivitendo 4.0.0 keeps the id in a variable of SL::Auth's file, without an accessor: there it is
# unset in a fresh process (nothing restored it), and create_or_refresh_session makes the new one.
my $own_session;
sub start_own_session {
  delete @ENV{qw(HTTP_COOKIE COOKIE)};
  $::auth->session_id(undef) if $::auth->can('session_id');
  $::auth->{SESSION} = {};
  $own_session = $::auth->create_or_refresh_session;
}

# After the action: roll back what a package left open (kivitendo does the same after each
# client), and drop this run's own session (its auth.session rows, should a package have saved it,
# and its users/session_files folder) instead of leaving one per run — only that one, whatever
# session id the package's code may have set meanwhile.
sub finish_kivitendo {
  eval { SL::DB->client->dbh->rollback };
  if ($::auth && $own_session) {
    eval {
      $::auth->session_id($own_session) if $::auth->can('session_id');
      $::auth->destroy_session;
    };
    $own_session = undef;
  }
  # Its backends end now, before the server records the run.
  eval { SL::DBConnect::Cache->disconnect_all_and_clear; 1 };
  timing('finish');
}

sub run_job {
  my ($req) = @_;

  $job = SL::DB::Manager::BackgroundJob->find_by(id => $req->{job_id})
    or die "background job ID $req->{job_id} not found\n";
  timing('job_row');
  my $name = $job->package_name // '';
  die "invalid package name '$name'\n" unless $name =~ m/^[A-Z][A-Za-z0-9]+$/;
  my $package = "SL::BackgroundJob::$name";

  $phase = 'load';
  eval "require $package; 1" or die $@;
  timing('package');

  # As SL::DB::BackgroundJob::run: a fresh package object, the job row as argument; its return
  # value is the history's result, the job's data after the run the history's data.
  $phase = 'run';
  my $result = $package->new->run($job);
  timing('run');

  return {
    ok     => 1,
    result => defined($result) ? '' . $result : undef,
    data   => $job->data,
  };
}
