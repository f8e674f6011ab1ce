#!/usr/bin/perl
# Saves a background_jobs row the way kivitendo's web UI does when an admin edits a job and presses
# "save" (SL::Controller::BackgroundJob::create_or_update), with kivitendo's own classes: load the
# row, assign the form's attributes, validate, update_next_run_at, save. Used by the tests to check
# that what this server writes into background_jobs is something kivitendo's UI can load and fix.
#
# Usage: perl webui-save-background-job.pl KIVITENDO_SOURCE JOB_ID [column=value ...]
# Client DB from the environment: KTS_DB_NAME, KTS_DB_HOST, KTS_DB_PORT, KTS_DB_USER, KTS_DB_PASSWORD.
# Prints "saved next_run_at=<value>" or "invalid: <kivitendo's messages>" (exit 3).
use strict;
use warnings;

my $source;
BEGIN {
  $source = shift @ARGV or die "usage: $0 KIVITENDO_SOURCE JOB_ID [column=value ...]\n";
  chdir $source or die "cannot change into $source: $!\n";
  unshift @INC, "$source/modules/override";
  push @INC, $source;
}

use SL::LxOfficeConf;
use SL::Locale;
use SL::LXDebug;
use SL::DB::BackgroundJob;

SL::LxOfficeConf->read;
$::lxdebug = LXDebug->new;
$::locale  = Locale->new('en');
%::myconfig = (
  dbname   => $ENV{KTS_DB_NAME},
  dbhost   => $ENV{KTS_DB_HOST},
  dbport   => $ENV{KTS_DB_PORT},
  dbuser   => $ENV{KTS_DB_USER},
  dbpasswd => $ENV{KTS_DB_PASSWORD},
  dateformat   => 'yyyy-mm-dd',
  numberformat => '1000.00',
);

my $id  = shift @ARGV or die "JOB_ID missing\n";
my %params = map { split /=/, $_, 2 } @ARGV;

my $job = SL::DB::BackgroundJob->new(id => $id)->load;
$job->assign_attributes(%params);
my @errors = $job->validate;
if (@errors) {
  print "invalid: ", join('; ', @errors), "\n";
  exit 3;
}
$job->update_next_run_at;
$job->save;
print "saved next_run_at=", $job->next_run_at, "\n";
