#!/usr/bin/perl
# Runs a piece of Perl inside kivitendo's own code base for one client, the way kivitendo's task
# server sets up a job (config read, $::auth with the client chosen, the task server user's
# %::myconfig), so tests can compare this server's rows with what kivitendo's classes write.
#
# Usage: perl kivitendo-eval.pl KIVITENDO_SOURCE CONFIG_FILE CLIENT_ID LOGIN PERL_CODE
use strict;
use warnings;

my $source;
BEGIN {
  $source = shift @ARGV or die "usage: $0 KIVITENDO_SOURCE CONFIG_FILE CLIENT_ID LOGIN PERL_CODE\n";
  chdir $source or die "cannot change into $source: $!\n";
  unshift @INC, "$source/modules/override";
  push @INC, $source;
}

use SL::LxOfficeConf;
use SL::Locale;
use SL::LXDebug;
use SL::Auth;
use SL::Form;
use SL::DB;

my ($config_file, $client_id, $login, $code) = @ARGV;
die "usage: $0 KIVITENDO_SOURCE CONFIG_FILE CLIENT_ID LOGIN PERL_CODE\n" unless defined $code;

SL::LxOfficeConf->read($config_file);
$::lxdebug = LXDebug->new;
$::locale  = Locale->new('en');
$::form    = Form->new;
$::auth    = SL::Auth->new;
$::auth->set_client($client_id) or die "client $client_id not found in the auth database\n";
%::myconfig = $::auth->read_user(login => $login);

my $ok = eval "$code; 1";
die "kivitendo code failed: $@" unless $ok;
