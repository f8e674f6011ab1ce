# Action "periodic_invoices_output": prints and e-mails the invoices that a native CreatePeriodicInvoices
# run has posted and committed, through kivitendo's own SL::BackgroundJob::CreatePeriodicInvoices
# (_print_invoice, _email_invoice). So the client's edited templates, Form::parse_template with the
# LaTeX driver, SL::Helper::CreatePDF with ZUGFeRD/Factur-X, SL::Mailer with its journal, and
# kivitendo's translated error texts are exactly kivitendo's.
#
# Request:  { print => [ar id, ...], email => [ar id, ...] }   (in posting order, as kivitendo queues them)
#           latex_cache => DIR (optional), render => 1 (optional, see below)
# Result:   { printed => [ar id], printed_failed => [[ar id, error]], emailed => [ar id],
#             emailed_failed => [[ar id, error]], job_errors => [text] }
#
# Printing on every core: LaTeX is nearly all of the time, and kivitendo runs it one invoice after
# the other. So the server first runs this action with `render => 1` in several processes at once,
# each on a share of the invoices: kivitendo's same print and mail code, but nothing leaves the
# process (the printer command writes to /dev/null, no mail is sent, no file stored, everything
# rolled back) — only each PDF LaTeX made is kept in latex_cache, under a digest of its .tex file,
# the LaTeX command and the TeX environment. Then the one real run goes through kivitendo's code
# invoice by invoice as before, in kivitendo's order, and wherever LaTeX would compile a .tex seen
# before it copies the kept PDF instead. Any .tex not seen (a render process failed, a template
# that prints a temporary name) is compiled as usual, with kivitendo's own error texts. The real
# run starts with the render processes: before each print or mail it waits until the render
# process that has it is done with it (a file done-<print|email>-<id>), or all of them have ended
# (renders-done, written by the server).
use strict;

use Digest::SHA ();
use English qw(-no_match_vars);
use File::Copy ();
use File::Spec ();
use File::Temp ();
use List::MoreUtils qw(first_index);
use List::Util qw(min);
use Scalar::Util qw(blessed refaddr);
use String::ShellQuote qw(shell_quote);
use Time::HiRes ();

use SL::BackgroundJob::CreatePeriodicInvoices;
use SL::DB::Invoice;
use SL::DB::PeriodicInvoice;
use SL::DB::PeriodicInvoicesConfig;

# What kivitendo's _create_periodic_invoice hands to _print_invoice/_email_invoice, rebuilt from the
# committed rows: the invoice, its config, the period start date and kivitendo's own period variables.
sub _kts_periodic_invoice_data {
  my ($ar_id) = @_;

  my $link = SL::DB::Manager::PeriodicInvoice->find_by(ar_id => $ar_id)
    or die "invoice id $ar_id has no periodic_invoices row\n";
  my $config  = SL::DB::PeriodicInvoicesConfig->new(id => $link->config_id)->load;
  my $invoice = SL::DB::Invoice->new(id => $ar_id)->load;

  # After posting, kivitendo's invoice object has its customer loaded; _email_invoice reads
  # $invoice->{customer} directly, so load the relationship the same way.
  $invoice->customer;

  # Posting leaves the amounts that Rose computed as Perl numbers on the object; a fresh load gives
  # PostgreSQL's numeric text ("155.26000"). <%amount%> in e-mail subjects prints the attribute as
  # is, so give the computed columns their numeric value again.
  for my $column (qw(amount netamount marge_total marge_percent)) {
    my $value = $invoice->$column;
    $invoice->$column(0 + $value) if defined $value;
  }

  return {
    config            => $config,
    invoice           => $invoice,
    period_start_date => $link->period_start_date,
    time_period_vars  => SL::BackgroundJob::CreatePeriodicInvoices::_generate_time_period_variables($config, $link->period_start_date),
  };
}

sub _kts_error_text {
  my ($error) = @_;
  return $error->error if blessed($error) && $error->can('error') && defined $error->error;
  return "$error";
}

# kivitendo hands a LaTeX failure on as "<template> : <the whole latexmk output>" (hundreds of lines
# in the history row and the summary mail). Shortened to the template and the first error line of
# the log with the line it names; the whole output goes to the server's log.
sub _kts_short_latex_error {
  my ($error) = @_;
  return $error unless $error =~ m{^(\S+\.tex) : (.*)}s;
  my ($template, $log) = ($1, $2);
  my @lines = split m{\n}, $log;
  my $i     = first_index { m{^\s*! } } @lines;
  return $error if $i < 0;
  (my $message = $lines[$i]) =~ s{^\s+|\s+$}{}g;
  my ($where) = grep { m{^\s*l\.\d+} } @lines[ $i + 1 .. min($#lines, $i + 8) ];
  if ($where) {
    $where   =~ s{^\s+|\s+$}{}g;
    $message .= " ($where)";
  }
  print STDERR "kivitendo's LaTeX output for ${template}:\n$log\n";
  return "$template : $message";
}

# kivitendo writes the PDF into the printer command and never looks at its exit status, so a
# failing command counts as printed. The command (a ShellCommand template) is wrapped in memory so
# that a non-zero status of any copy is recorded; nothing is saved.
sub _kts_watch_printer_command {
  my ($config, $render) = @_;
  my $printer  = $config->print && $config->printer_id ? $config->printer : undef;
  my $command  = $printer ? $printer->printer_command : undef;
  return undef unless defined $command && $command ne '';
  my $status = File::Temp->new(TEMPLATE => 'kts-printer-status-XXXXXX', TMPDIR => 1);
  # Render mode prints nowhere.
  $command = 'cat > /dev/null' if $render;
  $printer->printer_command("( $command\n) || echo \$? >> " . shell_quote($status->filename));
  return { file => $status, printer => $printer, command => $command };
}

sub _kts_printer_failure {
  my ($watch) = @_;
  return undef unless $watch;
  $watch->{printer}->printer_command($watch->{command});
  open my $fh, '<', $watch->{file}->filename or return undef;
  my @codes = grep { m{\S} } map { s{\s+}{}gr } <$fh>;
  return undef unless @codes;
  return sprintf("the printer command of printer '%s' exited with status %s", $watch->{printer}->printer_description // $watch->{printer}->id, join(', ', @codes));
}

# The key of one LaTeX run: what decides its PDF.
sub _kts_latex_key {
  my ($latex, $tex_file) = @_;
  # kivitendo's driver asks for the command before it closes the .tex it is writing; what LaTeX
  # will read is on disk only once perl flushes its handles, as it does before running a command.
  # An empty system() does just that flush (and runs nothing).
  { local ($?, $!); no warnings; system(); }
  open my $fh, '<:raw', $tex_file or return undef;
  my $tex = do { local $/; <$fh> };
  return undef unless length($tex // '');
  # Files the .tex embeds (ZUGFeRD's factur-x.xml) sit in temporary files of their own: they count
  # by their content, not their random names. So does the PDF/A metadata LaTeX reads beside it.
  my $missing;
  my $by_content = sub { my $digest = _kts_file_digest($_[0]); $missing = 1 unless $digest; $digest // '' };
  $tex =~ s/(\\embedfile\[[^\]]*\]\{)([^}]*)(\})/$1 . $by_content->($2) . $3/ge;
  return undef if $missing;
  return Digest::SHA::sha256_hex(join "\0", $latex, (map { $ENV{$_} // '' } qw(TEXINPUTS TEXMFHOME TEXMFVAR openin_any)), _kts_xmp_digest(), $tex);
}

# kivitendo's PDF/A metadata carries the time it was made (as pdfTeX's /CreationDate does in
# every PDF): a PDF rendered ahead keeps the time it was rendered, a few seconds earlier.
sub _kts_xmp_digest {
  open my $fh, '<:raw', 'pdfa.xmp' or return '';
  my $xmp = do { local $/; <$fh> };
  $xmp =~ s/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:Z|[+-]\d\d:?\d\d)?/TIME/g;
  return Digest::SHA::sha256_hex($xmp);
}

sub _kts_file_digest {
  my ($file) = @_;
  return undef unless -f $file;
  my $sha = Digest::SHA->new(256);
  return eval { $sha->addfile($file, 'b'); $sha->hexdigest };
}

# Hooks into kivitendo's LaTeX driver for this action. SL::Template::LaTeX::convert_to_pdf asks
# _get_latex_path for the command in the users folder, with its .tex there and the TeX environment
# set. Render mode: the command is unchanged; a PDF it made is kept. Otherwise: a kept PDF for the
# same key is copied where LaTeX would have written it, and the command's output redirection
# (kivitendo appends "<args> > <file>.err") is commented out.
sub _kts_latex_cache {
  my ($dir, $render) = @_;
  my $get_latex = \&SL::Template::LaTeX::_get_latex_path;
  my $convert   = \&SL::Template::LaTeX::convert_to_pdf;
  my $made;
  my %count = (hit => 0, miss => 0);
  no warnings 'redefine';
  *SL::Template::LaTeX::_get_latex_path = sub {
    my ($self) = @_;
    my $latex = $get_latex->(@_);
    my $tex   = $self->{form}->{tmpfile} // '';
    my $key   = $tex =~ m{\.tex$} ? _kts_latex_key($latex, $tex) : undef;
    return $latex unless $key;
    (my $pdf = File::Spec->rel2abs($tex)) =~ s{\.tex$}{.pdf};
    $made = [ $pdf, "$dir/$key.pdf" ];
    return $latex if $render;
    $count{ -f "$dir/$key.pdf" ? 'hit' : 'miss' }++;
    return $latex unless -f "$dir/$key.pdf";
    return 'cp ' . shell_quote("$dir/$key.pdf", $pdf) . ' #';
  };
  *SL::Template::LaTeX::convert_to_pdf = sub {
    undef $made;
    my $ok = $convert->(@_);
    # still in the users folder, where LaTeX wrote it
    if ($ok && $render && $made && -f $made->[0] && !-f $made->[1]) {
      File::Copy::copy($made->[0], "$made->[1].$$") && rename("$made->[1].$$", $made->[1]);
    }
    return $ok;
  };
  return sub {
    *SL::Template::LaTeX::_get_latex_path = $get_latex;
    *SL::Template::LaTeX::convert_to_pdf  = $convert;
    print STDERR "LaTeX: $count{hit} PDF(s) rendered ahead, $count{miss} compiled here\n" unless $render;
  };
}

sub _kts_touch {
  my ($file) = @_;
  my $fh;
  close $fh if open $fh, '>', $file;
}

# KTS_PERL_TIMING=1: per invoice and process, the time spent waiting for a render process, the time
# of kivitendo's print or mail code, its CPU and that of the commands it ran (LaTeX, printer).
sub _kts_clock { $ENV{KTS_PERL_TIMING} ? (Time::HiRes::time(), times()) : () }

sub _kts_step_timing {
  my ($who, $what, $waited, $started) = @_;
  return unless $ENV{KTS_PERL_TIMING};
  my @ended = _kts_clock();
  my $ms    = sub { sprintf '%.0f', 1000 * $_[0] };
  printf STDERR "kts-timing %s %s: wait %s ms, work %s ms, cpu %s ms, commands' cpu %s ms\n", $who, $what,
    $ms->($started->[0] - $waited->[0]), $ms->($ended[0] - $started->[0]),
    $ms->($ended[1] + $ended[2] - $started->[1] - $started->[2]), $ms->($ended[3] + $ended[4] - $started->[3] - $started->[4]);
}

sub _kts_until_rendered {
  my ($dir, $step) = @_;
  Time::HiRes::sleep(0.05) until -e "$dir/done-$step" || -e "$dir/renders-done";
}

# Render mode: kivitendo's print and mail code with every effect outside this process left out.
sub _kts_render_only {
  no warnings 'redefine';
  no strict 'refs';
  my %saved = map { ($_ => \&{$_}) } qw(Mailer::send SL::BackgroundJob::CreatePeriodicInvoices::_store_pdf_in_webdav SL::BackgroundJob::CreatePeriodicInvoices::_store_pdf_in_filemanagement);
  *Mailer::send = sub { '' };
  *SL::BackgroundJob::CreatePeriodicInvoices::_store_pdf_in_webdav         = sub { };
  *SL::BackgroundJob::CreatePeriodicInvoices::_store_pdf_in_filemanagement = sub { };
  return sub { no strict 'refs'; *{$_} = $saved{$_} for keys %saved };
}

sub kts_action_periodic_invoices_output {
  my ($request) = @_;

  require SL::Template::LaTeX;
  my @restore;
  push @restore, _kts_latex_cache($request->{latex_cache}, $request->{render}) if $request->{latex_cache};
  push @restore, _kts_render_only() if $request->{render};
  # What kivitendo keeps for debugging ([debug] keep_temp_files) is the printing process's.
  local $::lx_office_conf{debug}->{keep_temp_files} = 0 if $request->{render};
  my $result = eval { _kts_output($request) };
  my $error  = $EVAL_ERROR;
  $_->() for reverse @restore;
  die $error unless $result;
  return $result;
}

sub _kts_output {
  my ($request) = @_;

  my $job = SL::BackgroundJob::CreatePeriodicInvoices->new;
  $job->{$_} = [] for qw(job_errors posted_invoices printed_invoices printed_failed emailed_invoices emailed_failed disabled_orders);

  my %data;
  my $data_for = sub { my ($id) = @_; $data{$id} //= _kts_periodic_invoice_data($id) };

  # A printer command that ends before reading all of the PDF must not kill this process.
  local $SIG{PIPE} = 'IGNORE';

  # kivitendo prints every queued invoice first, then e-mails them. An exception that escapes its
  # methods would have rolled back kivitendo's whole run; here the invoices are committed already,
  # so it only fails that invoice, with kivitendo's text for a failed print or mail.
  my @steps = (
    [ print => '_print_invoice', 'Printing periodic invoice #1 failed: #2',         'printed_failed', 'printed_invoices' ],
    [ email => '_email_invoice', 'Sending email for periodic invoice #1 failed: #2', 'emailed_failed', 'emailed_invoices' ],
  );
  foreach my $step (@steps) {
    my ($key, $method, $text, $failed, $done) = @{ $step };
    foreach my $id (@{ $request->{$key} || [] }) {
      my @waited = _kts_clock();
      _kts_until_rendered($request->{latex_cache}, "$key-$id") if $request->{latex_cache} && !$request->{render};
      my @started = _kts_clock();
      my ($data, $watch);
      my ($n_failed, $n_errors) = (scalar @{ $job->{$failed} }, scalar @{ $job->{job_errors} });
      my $ok = eval {
        $data  = $data_for->($id);
        $watch = _kts_watch_printer_command($data->{config}, $request->{render}) if $key eq 'print';
        $job->$method($data);
        1;
      };
      my $error = $ok ? undef : _kts_error_text($EVAL_ERROR);
      my $printer_failure = _kts_printer_failure($watch);

      if ($ok && $printer_failure && @{ $job->{$done} } && refaddr($job->{$done}->[-1]) == refaddr($data->{invoice})) {
        pop @{ $job->{$done} };
        ($ok, $error) = (0, $printer_failure);
      }

      # Shorten LaTeX failures kivitendo recorded itself.
      for my $entry (@{ $job->{$failed} }[ $n_failed .. $#{ $job->{$failed} } ]) {
        my $long  = "$entry->[1]";
        my $short = _kts_short_latex_error($long);
        next if $short eq $long;
        $entry->[1] = $short;
        s{\Q$long\E}{$short} for @{ $job->{job_errors} }[ $n_errors .. $#{ $job->{job_errors} } ];
      }

      _kts_touch("$request->{latex_cache}/done-$key-$id") if $request->{render};
      _kts_step_timing($request->{render} ? "render $$" : 'print', "$key $id", \@waited, \@started);
      next if $ok;
      $error        = _kts_short_latex_error($error);
      my $invoice   = $data ? $data->{invoice} : undef;
      my $invnumber = $invoice ? $invoice->invnumber : "id $id";
      push @{ $job->{job_errors} }, $::locale->text($text, $invnumber, $error);
      push @{ $job->{$failed} }, [ $invoice // SL::DB::Invoice->new(id => $id), $error ];
    }
  }

  return {
    printed        => [ map { $_->id } @{ $job->{printed_invoices} } ],
    # As the summary mail's template shows them: stringified.
    printed_failed => [ map { [ $_->[0]->id, "$_->[1]" ] } @{ $job->{printed_failed} } ],
    emailed        => [ map { $_->id } @{ $job->{emailed_invoices} } ],
    emailed_failed => [ map { [ $_->[0]->id, "$_->[1]" ] } @{ $job->{emailed_failed} } ],
    job_errors     => [ map { "$_" } @{ $job->{job_errors} } ],
  };
}

1;
