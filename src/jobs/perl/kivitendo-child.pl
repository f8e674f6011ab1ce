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
#   { run => N, pid => P, exit => CODE, signal => SIG }
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
  $report->({ ready => 1, ms => int(1000 * (Time::HiRes::time() - $t0)) });

  my $idle   = $ENV{KTS_PRELOAD_IDLE} || 0;
  my $me     = $$;
  my %kids;               # pid => run
  my $last   = Time::HiRes::time();
  my $eof    = 0;
  my $buffer = '';
  local $SIG{CHLD} = sub { };   # interrupts select, reaping is done below
  my $select = IO::Select->new(\*STDIN);
  while (1) {
    while ((my $pid = waitpid(-1, POSIX::WNOHANG())) > 0) {
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
      my $pid = fork;
      if (!defined $pid) {
        $report->({ run => $msg->{run}, pid => undef, error => "fork failed: $!" });
        next;
      }
      if (!$pid) {
        forked_child($msg, $me);
        POSIX::_exit(70);
      }
      $kids{$pid} = $msg->{run};
      $report->({ run => $msg->{run}, pid => $pid });
      $last = Time::HiRes::time();
    }
  }
}

# One run in a child of the preloaded parent: its own session, PGAPPNAME of its job, its output to
# the server, then the same code as a cold child.
sub forked_child {
  my ($msg, $parent) = @_;
  $SIG{CHLD} = 'DEFAULT';
  POSIX::setsid();
  set_pdeathsig();
  POSIX::_exit(71) if getppid() != $parent;
  srand();
  $ENV{PGAPPNAME} = $msg->{pgappname};
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
  close $sock{stdout};
  close $sock{stderr};
  # As a cold perl's STDERR: unbuffered, so the last words before a crash reach the log.
  STDERR->autoflush(1);
  $control = $sock{control};
  fcntl($control, F_SETFD, fcntl($control, F_GETFD, 0) | FD_CLOEXEC);
  $| = 1;
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
  print $control $json->encode($answer), "\n";
  close $control;
  STDOUT->flush;
  STDERR->flush;
  # Skip global destruction: kivitendo's objects have nothing left to do, and DESTROY noise
  # after the result would only confuse the log.
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
  SL::LxOfficeConf->read($req->{config_file});

  $::lxdebug = LXDebug->new;
  $::locale  = Locale->new($::lx_office_conf{system}->{language});
  $::form    = Form->new;
  $::auth    = SL::Auth->new;

  $::auth->set_client($req->{client_id}) or die "client ID $req->{client_id} not found in the authentication database\n";
  $::form->{__ERROR_HANDLER} = sub { die @_ };

  $::instance_conf = SL::InstanceConfiguration->new;
  $::request       = SL::Request->new(cgi => CGI->new({}), layout => SL::Layout::None->new);

  die "the authentication database has no session tables\n" unless $::auth->session_tables_present;
  start_own_session();

  my $login = $req->{login};
  %::myconfig = $::auth->read_user(login => $login);
  die "cannot find user $login\n" unless $::myconfig{login};
  $::locale = Locale->new($::myconfig{countrycode} || $::lx_office_conf{system}->{language})
    or die "cannot find locale for user $login\n";
  $phase = 'load';
}

# A session of this run's own, never one restored from a cookie. kivitendo's task server calls
# restore_session, which takes the session id from the HTTP_COOKIE variable of a daemon the web UI
# started (CGI reads cookies from the environment): its jobs then run in, and write back, the session
# of the user who clicked "start" or is waiting for an import. Ours would destroy it at the end, so
# it is neither restored nor named from outside: a fresh random id (create_or_refresh_session without
# a current one), which no auth.session row, cookie or session_files folder names yet. The server
# removes the web request's variables at start-up already; this holds whatever perl inherits.
my $own_session;
sub start_own_session {
  delete @ENV{qw(HTTP_COOKIE COOKIE)};
  $::auth->session_id(undef);
  $::auth->{SESSION} = {};
  $own_session = $::auth->create_or_refresh_session;
}

# After the action: roll back what a package left open (kivitendo does the same after each
# client), and drop this run's own session (its auth.session rows, should a package have saved it,
# and its users/session_files folder) instead of leaving one per run — only that one, whatever
# session id the package's code may have set meanwhile.
sub finish_kivitendo {
  eval { SL::DB->client->dbh->rollback };
  return unless $::auth && $own_session;
  eval {
    $::auth->session_id($own_session);
    $::auth->destroy_session;
  };
  $own_session = undef;
}

sub run_job {
  my ($req) = @_;

  $job = SL::DB::Manager::BackgroundJob->find_by(id => $req->{job_id})
    or die "background job ID $req->{job_id} not found\n";
  my $name = $job->package_name // '';
  die "invalid package name '$name'\n" unless $name =~ m/^[A-Z][A-Za-z0-9]+$/;
  my $package = "SL::BackgroundJob::$name";

  $phase = 'load';
  eval "require $package; 1" or die $@;

  # As SL::DB::BackgroundJob::run: a fresh package object, the job row as argument; its return
  # value is the history's result, the job's data after the run the history's data.
  $phase = 'run';
  my $result = $package->new->run($job);

  return {
    ok     => 1,
    result => defined($result) ? '' . $result : undef,
    data   => $job->data,
  };
}
